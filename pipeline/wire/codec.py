"""Compact, lossless binary codec for the downlink products (standard library only).

``pack(value)`` / ``unpack(data)`` are symmetric for any JSON value (plus ``bytes``): after
``unpack(pack(v))`` the result equals ``v`` as JSON (same types: ``1`` stays an int, ``1.0`` a
float; dict key order kept).  The layout:

* a typed value tree with LEB128 varints; every string is written once and referenced by
  index after that (property keys, class names);
* floats with few decimals (``0.9731``, ``182.5``) as a scaled integer, exact by
  construction (checked at encode time), anything else as an IEEE double;
* the top-level ``features`` list of a GeoJSON FeatureCollection in a geometry-aware form:
  coordinates quantised to the fewest decimals that reproduce every coordinate exactly (5 for
  the compact onboard GeoJSON) and written as zig-zag deltas, so neighbouring vertices cost a
  byte or two.  A feature or geometry that does not fit the form (extra members, integer
  coordinates, ...) falls back to the generic value encoding, still lossless;
* the whole body raw-deflated (zlib) when that is smaller; one leading byte says which.

The decoder raises :class:`~pipeline.errors.PacketError` on malformed input, never anything
else, so a damaged product can be reported and skipped.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

from ..errors import PacketError

FORMAT_RAW = 0x01
FORMAT_DEFLATE = 0x02
FORMAT_DEFLATE_DICT = 0x03  # raw deflate with the preset dictionary below

T_NONE, T_FALSE, T_TRUE, T_INT, T_F64, T_DEC, T_STR, T_REF, T_LIST, T_DICT, T_BYTES = range(11)
T_FEATURES = 11

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)
#: nesting depth of the coordinates array (0: one position)
_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
G_NULL = 0x00
G_FLOAT64 = 0x80  # flag: coordinates as doubles (otherwise quantised deltas)
G_3D = 0x40  # flag: positions have 3 values
F_GENERIC = 0
F_STRUCTURED = 1
MAX_DECIMALS = 9
_F64 = struct.Struct(">d")
#: decoding limits: a damaged length must not make the decoder allocate gigabytes
MAX_ITEMS = 1 << 24
#: deepest nesting of lists/dicts (GeoJSON needs about 8): 100 kB of ``[[[[...`` must raise
#: PacketError, not exhaust Python's recursion limit
MAX_DEPTH = 100


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def decimals_of(x: float) -> int | None:
    """Fewest decimals ``d`` (<= 9) with ``round(x * 10**d) / 10**d == x`` exactly, or None."""
    if not math.isfinite(x) or abs(x) >= 2.0**53 or (x == 0.0 and math.copysign(1.0, x) < 0):
        return None
    for d in range(MAX_DECIMALS + 1):
        scale = 10**d
        q = round(x * scale)
        if abs(q) < 1 << 53 and q / scale == x:
            return d
    return None


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()
        self.strings: dict[str, int] = {}
        self.depth = 0

    def varint(self, n: int) -> None:
        if n < 0:
            raise ValueError("varint must be >= 0")
        out = self.out
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)

    def svarint(self, n: int) -> None:
        self.varint(_zigzag(n))

    def string(self, s: str) -> None:
        ref = self.strings.get(s)
        if ref is not None:
            self.out.append(T_REF)
            self.varint(ref)
            return
        raw = s.encode("utf-8", "surrogatepass")
        self.out.append(T_STR)
        self.varint(len(raw))
        self.out += raw
        self.strings[s] = len(self.strings)

    def value(self, v: Any, top: bool = False) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PacketError(f"cannot encode values nested deeper than {MAX_DEPTH}")
        try:
            self._value(v, top)
        finally:
            self.depth -= 1

    def _value(self, v: Any, top: bool) -> None:
        out = self.out
        if v is None:
            out.append(T_NONE)
        elif v is True:
            out.append(T_TRUE)
        elif v is False:
            out.append(T_FALSE)
        elif isinstance(v, int):
            out.append(T_INT)
            self.svarint(int(v))
        elif isinstance(v, float):
            d = decimals_of(v)
            if d is None:
                out.append(T_F64)
                out += _F64.pack(v)
            else:
                out.append(T_DEC)
                out.append(d)
                self.svarint(round(v * 10**d))
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, bytes | bytearray | memoryview):
            out.append(T_BYTES)
            self.varint(len(v))
            out += bytes(v)
        elif isinstance(v, list | tuple):
            out.append(T_LIST)
            self.varint(len(v))
            for item in v:
                self.value(item)
        elif isinstance(v, dict):
            out.append(T_DICT)
            self.varint(len(v))
            for k, item in v.items():
                if not isinstance(k, str):
                    raise PacketError(f"cannot encode a dict key of type {type(k).__name__}")
                self.string(k)
                if top and k == "features" and isinstance(item, list | tuple):
                    self.depth += 1  # one level, as the reader counts it
                    try:
                        _FeatureWriter(self).features(item)
                    finally:
                        self.depth -= 1
                else:
                    self.value(item)
        else:
            raise PacketError(f"cannot encode a value of type {type(v).__name__}")


def _positions(coords: Any, depth: int) -> tuple[list[Any], int] | None:
    """All positions of a coordinates array of the given nesting depth, flattened, and their
    dimension; None unless every position is 2 or 3 finite floats of one dimension."""
    flat: list[Any] = []
    dims: set[int] = set()

    def walk(c: Any, d: int) -> bool:
        if not isinstance(c, list | tuple):
            return False
        if d == 0:
            if len(c) not in (2, 3) or not all(type(x) is float and math.isfinite(x) for x in c):
                return False
            dims.add(len(c))
            flat.append(c)
            return True
        return all(walk(x, d - 1) for x in c)

    if not walk(coords, depth) or len(dims) > 1:
        return None
    return flat, dims.pop() if dims else 2


class _FeatureWriter:
    """The geometry-aware form of a ``features`` list."""

    def __init__(self, w: _Writer) -> None:
        self.w = w
        self.prev = [0, 0, 0]
        self.shapes: dict[tuple[str, ...], int] = {}

    def _properties(self, props: Any) -> None:
        """Property dicts by *shape*: the key list is written once per list, then referenced
        (features of one class share their keys); anything else as a generic value."""
        w = self.w
        if not isinstance(props, dict) or not all(isinstance(k, str) for k in props):
            w.varint(0)
            w.value(props)
            return
        keys = tuple(props)
        ref = self.shapes.get(keys)
        if ref is None:
            ref = self.shapes[keys] = len(self.shapes)
            w.varint(ref + 1)
            w.varint(len(keys))
            for k in keys:
                w.string(k)
        else:
            w.varint(ref + 1)
        for v in props.values():
            w.value(v)

    def _structured(self, f: Any) -> tuple[str, Any, int] | None | bool:
        """(type, coordinates, dim) for a structured feature, None for a null geometry,
        False when the feature must use the generic encoding."""
        if not isinstance(f, dict) or list(f) != ["type", "geometry", "properties"]:
            return False
        if f["type"] != "Feature":
            return False
        g = f["geometry"]
        if g is None:
            return None
        if not isinstance(g, dict) or list(g) != ["type", "coordinates"]:
            return False
        gtype = g["type"]
        if not isinstance(gtype, str) or gtype not in _DEPTH:  # e.g. a list: unhashable
            return False
        shape = _positions(g["coordinates"], _DEPTH[gtype])
        if shape is None:
            return False
        return gtype, shape[0], shape[1]

    def features(self, feats: list[Any] | tuple[Any, ...]) -> None:
        w = self.w
        plans = [self._structured(f) for f in feats]
        # one decimal count for the whole list: the fewest that reproduce every coordinate
        decimals = 0
        exact: list[bool] = []
        for p in plans:
            ok = True
            if isinstance(p, tuple):
                for pos in p[1]:
                    for x in pos:
                        d = decimals_of(x)
                        if d is None:
                            ok = False
                            break
                        decimals = max(decimals, d)
                    if not ok:
                        break
            exact.append(ok)
        scale = 10**decimals
        for i, p in enumerate(plans):  # exact at the common scale too? (always, checked anyway)
            if exact[i] and isinstance(p, tuple):
                exact[i] = all(round(x * scale) / scale == x for pos in p[1] for x in pos)
        w.out.append(T_FEATURES)
        w.varint(len(feats))
        w.out.append(decimals)
        for f, p, ok in zip(feats, plans, exact, strict=True):
            if p is False:
                w.out.append(F_GENERIC)
                w.value(f)
                continue
            w.out.append(F_STRUCTURED)
            if p is None:
                w.out.append(G_NULL)
            else:
                assert isinstance(p, tuple)
                gtype, dim = p[0], p[2]
                coords = f["geometry"]["coordinates"]
                code = GEOMETRY_TYPES.index(gtype) + 1
                code |= G_3D if dim == 3 else 0
                code |= 0 if ok else G_FLOAT64
                w.out.append(code)
                self._coords(coords, _DEPTH[gtype], dim, scale if ok else None)
            self._properties(f["properties"])

    def _coords(self, c: Any, depth: int, dim: int, scale: int | None) -> None:
        w = self.w
        if depth == 1 and scale is not None:
            self._path([[round(x * scale) for x in p] for p in c], dim)
            return
        if depth > 0:
            w.varint(len(c))
            for x in c:
                self._coords(x, depth - 1, dim, scale)
            return
        if scale is None:
            for x in c:
                w.out += _F64.pack(x)
            return
        self._position([round(x * scale) for x in c])

    def _position(self, q: list[int]) -> None:
        for i, v in enumerate(q):
            self.w.svarint(v - self.prev[i])
            self.prev[i] = v

    def _path(self, qs: list[list[int]], dim: int) -> None:
        """A list of quantised positions (ring, line, multipoint).

        Header ``n << 3 | axis << 2 | rectilinear << 1 | closed``: a closed ring omits its
        last position (equal to the first); a rectilinear path (pixel outlines: every step
        moves along one axis, alternating) stores one delta per step instead of two.
        """
        n = len(qs)
        closed = n >= 2 and qs[0] == qs[-1]
        stored = qs[:-1] if closed else qs
        rect, axis0 = False, 0
        if dim == 2 and len(stored) >= 2:
            axes: list[int] = []
            for a, b in zip(stored, stored[1:], strict=False):
                moved_x, moved_y = a[0] != b[0], a[1] != b[1]
                if moved_x == moved_y or (axes and axes[-1] == int(moved_y)):
                    break
                axes.append(int(moved_y))
            else:
                rect, axis0 = True, axes[0]
        self.w.varint(n << 3 | axis0 << 2 | int(rect) << 1 | int(closed))
        if not stored:
            return
        self._position(stored[0])
        axis = axis0
        for p in stored[1:]:
            if rect:
                self.w.svarint(p[axis] - self.prev[axis])
                self.prev[axis] = p[axis]
                axis ^= 1
            else:
                self._position(p)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.strings: list[str] = []
        self.depth = 0

    def fail(self, what: str) -> PacketError:
        return PacketError(f"malformed product at byte {self.pos}: {what}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated (wants {n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        n = 0
        shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 7 * 160:
                raise self.fail("varint too long")

    def count(self) -> int:
        n = self.varint()
        if n > MAX_ITEMS or n > len(self.data) - self.pos + 1:
            raise self.fail(f"implausible item count {n}")
        return n

    def svarint(self) -> int:
        return _unzigzag(self.varint())

    def value(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"values nested deeper than {MAX_DEPTH}")
        try:
            return self._value()
        finally:
            self.depth -= 1

    def _value(self) -> Any:
        tag = self.byte()
        if tag == T_NONE:
            return None
        if tag == T_TRUE:
            return True
        if tag == T_FALSE:
            return False
        if tag == T_INT:
            return self.svarint()
        if tag == T_F64:
            return _F64.unpack(self.take(8))[0]
        if tag == T_DEC:
            d = self.byte()
            if d > MAX_DECIMALS:
                raise self.fail(f"{d} decimals")
            return self.svarint() / 10**d
        if tag in (T_STR, T_REF):
            return self._string(tag)
        if tag == T_BYTES:
            return self.take(self.varint())
        if tag == T_LIST:
            return [self.value() for _ in range(self.count())]
        if tag == T_DICT:
            out: dict[str, Any] = {}
            for _ in range(self.count()):
                key = self._string(self.byte())
                out[key] = self.value()
            return out
        if tag == T_FEATURES:
            return _FeatureReader(self).features()
        raise self.fail(f"unknown tag {tag}")

    def _string(self, tag: int) -> str:
        if tag == T_REF:
            i = self.varint()
            if i >= len(self.strings):
                raise self.fail(f"string reference {i} of {len(self.strings)}")
            return self.strings[i]
        if tag != T_STR:
            raise self.fail(f"expected a string, got tag {tag}")
        try:
            s = self.take(self.varint()).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise self.fail(f"bad UTF-8 ({exc.reason})") from None
        self.strings.append(s)
        return s


class _FeatureReader:
    def __init__(self, r: _Reader) -> None:
        self.r = r
        self.prev = [0, 0, 0]
        self.shapes: list[tuple[str, ...]] = []

    def _properties(self) -> Any:
        r = self.r
        ref = r.varint()
        if ref == 0:
            return r.value()
        if ref == len(self.shapes) + 1:
            self.shapes.append(tuple(r._string(r.byte()) for _ in range(r.count())))
        elif ref > len(self.shapes):
            raise r.fail(f"property shape {ref - 1} of {len(self.shapes)}")
        return {k: r.value() for k in self.shapes[ref - 1]}

    def features(self) -> list[Any]:
        r = self.r
        n = r.count()
        decimals = r.byte()
        if decimals > MAX_DECIMALS:
            raise r.fail(f"{decimals} decimals")
        scale = 10**decimals
        out: list[Any] = []
        for _ in range(n):
            mode = r.byte()
            if mode == F_GENERIC:
                out.append(r.value())
                continue
            if mode != F_STRUCTURED:
                raise r.fail(f"unknown feature mode {mode}")
            code = r.byte()
            geom: dict[str, Any] | None = None
            if code != G_NULL:
                kind = (code & 0x3F) - 1
                if not 0 <= kind < len(GEOMETRY_TYPES):
                    raise r.fail(f"unknown geometry code {code}")
                gtype = GEOMETRY_TYPES[kind]
                dim = 3 if code & G_3D else 2
                coords = self._coords(_DEPTH[gtype], dim, None if code & G_FLOAT64 else scale)
                geom = {"type": gtype, "coordinates": coords}
            out.append({"type": "Feature", "geometry": geom, "properties": self._properties()})
        return out

    def _coords(self, depth: int, dim: int, scale: int | None) -> list[Any]:
        r = self.r
        if depth == 1 and scale is not None:
            return self._path(dim, scale)
        if depth > 0:
            return [self._coords(depth - 1, dim, scale) for _ in range(r.count())]
        if scale is None:
            return [_F64.unpack(r.take(8))[0] for _ in range(dim)]
        return self._position(dim, scale)

    def _position(self, dim: int, scale: int) -> list[Any]:
        pos: list[Any] = []
        for i in range(dim):
            q = self.prev[i] + self.r.svarint()
            self.prev[i] = q
            pos.append(q / scale)
        return pos

    def _path(self, dim: int, scale: int) -> list[Any]:
        r = self.r
        head = r.varint()
        n, closed, rect, axis = head >> 3, head & 1, head >> 1 & 1, head >> 2 & 1
        if n > MAX_ITEMS or n > len(r.data) - r.pos + 2 or (closed and n < 2):
            raise r.fail(f"implausible path of {n} positions")
        if rect and dim != 2:
            raise r.fail("rectilinear path with 3-D positions")
        out: list[Any] = []
        for k in range(n - closed):
            if k == 0 or not rect:
                out.append(self._position(dim, scale))
                continue
            self.prev[axis] += r.svarint()
            pos = [self.prev[0] / scale, self.prev[1] / scale]
            out.append(pos)
            axis ^= 1
        if closed:
            out.append(list(out[0]))
        return out


#: Strings the products use again and again, as the encoder writes them (tag, length, UTF-8):
#: the preset deflate dictionary makes their first occurrence in a product cost a few bits.
#: Changing this list changes the format: add a new FORMAT_* code instead.
PRESET_STRINGS = (
    "v", "n", "idx", "members", "order", "report", "scene", "sent", "waiting", "summary",
    "priority", "writer", "model", "latency_s", "text", "facts", "template", "llm", "low",
    "medium", "high", "i", "bbox", "fmt", "bands", "px", "img", "jpeg", "png",
    "FeatureCollection", "Feature", "type", "geometry", "properties", "coordinates",
    "Polygon", "MultiPolygon", "Point", "eotriage", "counts", "omitted", "features",
    "severity", "severe", "moderate", "mild", "area_km2", "length_m", "heading_deg",
    "area_m2", "pixel_count", "max_swir22_reflectance", "crop_stress", "ship", "fire",
    "score", "class",
)  # fmt: skip


def _preset_dictionary() -> bytes:
    out = bytearray()
    for s in PRESET_STRINGS:
        raw = s.encode()
        out += bytes([T_STR, len(raw)]) + raw
    return bytes(out)


PRESET_DICTIONARY = _preset_dictionary()


def pack(value: Any) -> bytes:
    """Serialise a JSON value (``bytes`` allowed too) compactly and losslessly."""
    w = _Writer()
    w.value(value, top=True)
    body = bytes(w.out)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=PRESET_DICTIONARY)
    deflated = comp.compress(body) + comp.flush()
    if len(deflated) < len(body):
        return bytes([FORMAT_DEFLATE_DICT]) + deflated
    return bytes([FORMAT_RAW]) + body


def unpack(data: bytes, max_size: int = 64 << 20) -> Any:
    """Inverse of :func:`pack`; raises :class:`PacketError` on malformed data."""
    if not data:
        raise PacketError("empty product")
    fmt, body = data[0], data[1:]
    if fmt in (FORMAT_DEFLATE, FORMAT_DEFLATE_DICT):
        try:
            d = (
                zlib.decompressobj(-15, zdict=PRESET_DICTIONARY)
                if fmt == FORMAT_DEFLATE_DICT
                else zlib.decompressobj(-15)
            )
            body = d.decompress(body, max_size)
            if d.unconsumed_tail or not d.eof:
                raise PacketError("deflate stream truncated or larger than allowed")
        except zlib.error as exc:
            raise PacketError(f"deflate stream damaged ({exc})") from None
    elif fmt != FORMAT_RAW:
        raise PacketError(f"unknown product format 0x{fmt:02x}")
    r = _Reader(body)
    value = r.value()
    if r.pos != len(body):
        raise PacketError(f"{len(body) - r.pos} trailing bytes after the product")
    return value
