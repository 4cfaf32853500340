"""Arrow columns to JSON text, a whole column at a time, by the rules in ``docs/values.md``.

Every value leaves as the JSON Iterable will store it, written exactly: decimals as their own digits
(never through a binary float), floats in their shortest round-trip form (a float4 ``0.1`` is ``0.1``),
dates and timestamps in Iterable's date formats, lists as arrays (nesting kept), structs and maps as
objects, JSON text columns (when asked) as the JSON they hold. One column always leaves with one JSON
type, because Iterable fixes a field's type by the first value it sees: a double is ``1.0``, never ``1``.

A value Iterable cannot store (NaN, ±Infinity, a date outside years 0001-9999, a decimal a double
cannot hold, a number past a long's range, text that is not JSON) is a *problem*: by default its row
is rejected with a reason naming the field; with ``invalid_values: null`` it is sent as null instead.

The work is Arrow compute over whole columns; Python touches single values only for the rare ones
that need it (strings with control characters, decimals of more than 15 significant digits, JSON).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode

ITERABLE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S +00:00"
ITERABLE_DATE_FORMAT = "%Y-%m-%d"

# Days from 1970-01-01 to 0001-01-01 and to 9999-12-31: Iterable's dates have four-digit years.
MIN_DAY = -719_162
MAX_DAY = 2_932_896
_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
# A double keeps every decimal of up to 15 significant digits; beyond, only some survive the trip.
DOUBLE_EXACT_DIGITS = 15
INT64_MAX = 2**63 - 1

JSON_NULL = "null"
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def json_kinds(dtype: pa.DataType, path: str) -> list[tuple[str, str]]:
    """The Iterable field types a column of this type creates: (path, type) for the field itself and,
    for a struct, for each of its fields (``address`` object, ``address.city`` string). A type whose
    kind depends on its values (JSON text) creates none."""
    if pa.types.is_dictionary(dtype):
        return json_kinds(dtype.value_type, path)
    if pa.types.is_struct(dtype):
        kinds = [(path, "object")]
        for i in range(dtype.num_fields):
            kinds += json_kinds(dtype.field(i).type, f"{path}.{dtype.field(i).name}")
        return kinds
    kind = _kind(dtype)
    return [(path, kind)] if kind else []


def _kind(dtype: pa.DataType) -> str | None:
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or (pa.types.is_decimal(dtype) and dtype.scale <= 0):
        return "long"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "double"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "date"
    if pa.types.is_time(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_string_view(dtype):  # (a separate test: is_string is False for views)
        return "string"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return "array"
    if pa.types.is_map(dtype):
        return "object"
    return None


@dataclass
class Problems:
    """Rows of a batch whose values cannot be sent: each problem a mask over the rows, and its reason."""

    rows: int
    masks: list[tuple[pa.BooleanArray, str]] = field(default_factory=list)
    codes: list[ReasonCode] = field(default_factory=list)
    prefix: str = ""  # put before every reason: the path of the object or array the reporting field is in

    def add(self, mask: pa.Array, reason: str, code: ReasonCode = ReasonCode.INVALID_VALUE) -> None:
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            self.masks.append((mask, self.prefix + reason))
            self.codes.append(code)

    def refuse(self, has_value: pa.Array, reason: str) -> None:
        """The rows with a value where the destination's field type does not fit it (``reason`` is whole)."""
        mask = pc.fill_null(has_value, False)
        if pc.any(mask).as_py():
            self.masks.append((mask, reason))
            self.codes.append(ReasonCode.TYPE_MISMATCH)

    def within(self, path: str) -> Problems:
        """The same problems, reported by a part of an object or array: its reasons, which start with the
        part's own field name, are given the path it sits under (``address.`` + ``city: ...``)."""
        return Problems(self.rows, self.masks, self.codes, self.prefix + path)

    def add_rows(self, rows: pa.Array, reason: str) -> None:
        """A problem of the rows at these indices."""
        self.add(pc.is_in(pa.array(range(self.rows), pa.int64()), value_set=pc.cast(rows, pa.int64())), reason)

    def any_mask(self) -> pa.BooleanArray | None:
        """Rows with at least one problem, or None when every row is fine."""
        if not self.masks:
            return None
        combined = self.masks[0][0]
        for mask, _ in self.masks[1:]:
            combined = pc.or_(combined, mask)
        return combined

    def reason_for(self, row: int) -> str:
        """Every problem of one row, joined (called for rejected rows only)."""
        return "; ".join(reason for mask, reason in self.masks if mask[row].as_py())

    def code_for(self, row: int) -> ReasonCode:
        """The code of a row's first problem (a type mismatch before a bad value: it is the sync's to fix)."""
        found = [code for (mask, _), code in zip(self.masks, self.codes, strict=True) if mask[row].as_py()]
        return ReasonCode.TYPE_MISMATCH if ReasonCode.TYPE_MISMATCH in found else found[0]


# The date strings Iterable reads (docs/values.md), as JSON text: yyyy-MM-dd, yyyy-MM-dd HH:mm:ss with an
# optional zone, ISO 8601 with optional fraction and zone.
_DATE_JSON = (
    r'^"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?'
    r'| \d{2}:\d{2}:\d{2}(?: (?:Z|UTC|[+-]\d{2}:?\d{2}))?)?"$'
)


def json_dates(values: pa.Array) -> pa.BooleanArray:
    """Which JSON texts are strings Iterable reads as dates: in one of its formats, of a calendar date and
    a time that exist (no 2024-02-30, no 25:00). Null where the value is null."""
    shaped = pc.match_substring_regex(values, _DATE_JSON)
    day = pc.utf8_slice_codeunits(values, 1, 11)
    time = pc.if_else(pc.greater(pc.utf8_length(values), 12), pc.utf8_slice_codeunits(values, 12, 20), "00:00:00")
    head = pc.binary_join_element_wise(day, time, "T")
    # Arrow's parser rolls an impossible date over (02-30 -> 03-01): one that exists prints back the same.
    parsed = pc.strptime(head, "%Y-%m-%dT%H:%M:%S", "s", error_is_null=True)
    exists = pc.fill_null(pc.equal(pc.strftime(parsed, "%Y-%m-%dT%H:%M:%S"), head), False)
    return pc.and_(shaped, exists)


@dataclass(frozen=True)
class Misfit:
    """Values a destination field's type does not take, and the reason given to their rows: every value,
    or (``unless_date``) text that is not a date, for a date field fed text."""

    reason: str
    unless_date: bool = False


@dataclass(frozen=True)
class Encoder:
    """Encodes the columns of one batch; ``invalid_values`` is ``reject`` or ``null``; ``misfits``: the
    paths (of mappings, or of object mappings' parts) whose values do not fit the destination's type."""

    invalid_values: str = "reject"
    misfits: Mapping[str, Misfit] = field(default_factory=dict)

    def refuse_misfits(self, values: pa.Array | str, path: str, problems: Problems) -> None:
        """Reject the rows whose value at ``path`` does not fit its field."""
        misfit = self.misfits.get(path)
        if misfit is None:
            return
        array = values if isinstance(values, pa.Array) else pa.repeat(pa.scalar(values), problems.rows)
        refused = array.is_valid()
        if misfit.unless_date:
            refused = pc.and_(refused, pc.invert(json_dates(array)))
        problems.refuse(refused, misfit.reason)

    def encode(
        self, array: pa.Array | pa.ChunkedArray, where: str, problems: Problems, parse_json: bool = False
    ) -> pa.StringArray:
        """JSON text of each value (null where the value is null, or where a problem was nulled).

        Problems are reported to ``problems`` as masks over ``array``'s rows; ``where`` names the field
        in their reasons.
        """
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        return self._encode(array, where, _Sink(problems, None), parse_json)

    @staticmethod
    def text(array: pa.Array | pa.ChunkedArray) -> pa.StringArray:
        """Values as plain text (not JSON), for identifiers: numbers as digits, strings as they are."""
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        return pc.cast(array, pa.string())

    # -- one type each ------------------------------------------------------------------------------

    def _encode(self, array: pa.Array, where: str, sink: _Sink, parse_json: bool = False) -> pa.Array:
        dtype = array.type
        if pa.types.is_dictionary(dtype):
            return self._encode(array.dictionary_decode(), where, sink, parse_json)
        if isinstance(dtype, pa.BaseExtensionType):
            return self._encode(array.storage, where, sink, parse_json)
        if pa.types.is_null(dtype):
            return pa.nulls(len(array), pa.string())
        if pa.types.is_boolean(dtype):
            return pc.if_else(array, "true", "false")
        if pa.types.is_integer(dtype):
            return self._integer(array, where, sink)
        if pa.types.is_floating(dtype):
            return self._float(array, where, sink)
        if pa.types.is_decimal(dtype):
            return self._decimal(array, where, sink)
        if pa.types.is_timestamp(dtype):
            return self._timestamp(array, where, sink)
        if pa.types.is_date(dtype):
            return self._date(array, where, sink)
        if pa.types.is_time(dtype):
            return json_string(pc.cast(array, pa.string()))
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
            text = pc.cast(array, pa.string())
            return self._json_text(text, where, sink) if parse_json else json_string(text)
        if pa.types.is_map(dtype):
            return self._map(array, where, sink)
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
            return self._list(array, where, sink)
        if pa.types.is_struct(dtype):
            return self._struct(array, where, sink)
        raise TypeError(f"{where}: {dtype} values cannot be sent to Iterable")

    def _integer(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        if pa.types.is_uint64(array.type):
            too_big = pc.greater(array, pa.scalar(INT64_MAX, pa.uint64()))
            array = self._nullify(array, too_big, sink, f"{where}: a number above {INT64_MAX:,} is out of range")
        return pc.cast(array, pa.string())

    def _float(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        if pa.types.is_float16(array.type):
            array = pc.cast(array, pa.float32())
        nan = pc.is_nan(array)
        inf = pc.is_inf(array)
        array = self._nullify(array, nan, sink, f"{where}: NaN is not a number Iterable can store")
        array = self._nullify(array, inf, sink, f"{where}: Infinity is not a number Iterable can store")
        # Arrow prints the shortest text that reads back as the same float (of the column's own width).
        text = pc.cast(array, pa.string())
        # An integral double must still look like a double, or the field would be typed long.
        looks_integral = pc.invert(pc.match_substring_regex(text, r"[.eE]"))
        return pc.if_else(looks_integral, pc.binary_join_element_wise(text, ".0", ""), text)

    def _decimal(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        text = pc.cast(array, pa.string())  # the exact digits, e.g. 13.37 or -0.50 or 1.3E+4
        if array.type.scale <= 0:
            # Whole numbers travel as longs: past a long's range Iterable would round them.
            if array.type.precision - array.type.scale < 19:
                return text  # at most 18 digits: always within a long
            digits = pc.utf8_length(pc.replace_substring_regex(text, r"^-|E\+\d+$", ""))
            maybe_big = pc.greater_equal(pc.add(digits, -array.type.scale), 19)
            if pc.any(maybe_big).as_py():
                too_big = _python_mask(text, maybe_big, _past_long)
                text = self._nullify(text, too_big, sink, f"{where}: a number past {INT64_MAX:,} is out of range")
            return text
        if array.type.precision <= DOUBLE_EXACT_DIGITS:
            return text  # never more significant digits than a double keeps: nothing to check per value
        significant = pc.utf8_length(pc.replace_substring_regex(text, r"^-?0*\.?0*|\.|0*$", ""))
        long_ones = pc.greater(significant, DOUBLE_EXACT_DIGITS)
        if pc.any(long_ones).as_py():
            lossy = _python_mask(text, long_ones, _loses_digits_as_double)
            text = self._nullify(
                text,
                lossy,
                sink,
                f"{where}: the decimal has more digits than Iterable's numbers (doubles) keep; "
                "round it in the model or send it as text",
            )
        return text

    def _timestamp(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        unit = array.type.unit
        ticks = array.view(pa.int64())
        per_day = _UNIT_PER_DAY[unit]
        # In nanoseconds every int64 is within the years 1677-2262: the bounds clamp to int64's own.
        low, high = max(MIN_DAY * per_day, -INT64_MAX - 1), min((MAX_DAY + 1) * per_day - 1, INT64_MAX)
        out = pc.or_(pc.less(ticks, low), pc.greater(ticks, high))
        ticks = self._nullify(ticks, out, sink, _date_reason(where, ticks, out))
        # Aware timestamps are UTC instants underneath; naive ones are taken as UTC (what warehouses store).
        # Floored to the second, not truncated: before 1970 truncation would move an instant a second later.
        seconds = pc.cast(pc.floor_temporal(ticks.view(pa.timestamp(unit)), unit="second"), pa.timestamp("s"))
        # Arrow's cast writes yyyy-MM-dd HH:mm:ss (zero-padded years): ITERABLE_DATETIME_FORMAT, far faster
        # than strftime. The text needs no JSON escaping.
        return pc.binary_join_element_wise('"', pc.cast(seconds, pa.string()), ' +00:00"', "")

    def _date(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        days = pc.cast(array, pa.date32()).view(pa.int32())
        out = pc.or_(pc.less(days, MIN_DAY), pc.greater(days, MAX_DAY))
        days = self._nullify(days, out, sink, _date_reason(where, days, out))
        return pc.binary_join_element_wise('"', pc.cast(days.view(pa.date32()), pa.string()), '"', "")  # yyyy-MM-dd

    def _json_text(self, text: pa.Array, where: str, sink: _Sink) -> pa.Array:
        bad = _python_mask(text, text.is_valid(), _not_json)
        text = self._nullify(text, bad, sink, f"{where}: the value is not valid JSON")
        return pc.utf8_trim_whitespace(text)

    def _list(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        if pa.types.is_fixed_size_list(array.type) or pa.types.is_large_list(array.type):
            array = pc.cast(array, pa.list_(array.type.value_field))
        offsets = array.offsets
        start = offsets[0].as_py()
        values = array.values.slice(start, offsets[-1].as_py() - start)
        offsets = pc.subtract(offsets, pa.scalar(start, pa.int32()))
        child_sink = sink.nested(pc.list_parent_indices(array))
        items = pc.fill_null(self._encode(values, where + "[]", child_sink), JSON_NULL)
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, items, mask=array.is_null()), ",")
        return pc.binary_join_element_wise("[", joined, "]", "")

    def _map(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        # A map is laid out as a list of (key, value) structs: encode it as such, entries as "key":value.
        as_list = pa.ListArray.from_arrays(array.offsets, array.values, mask=array.is_null())
        offsets = as_list.offsets
        start = offsets[0].as_py()
        entries = as_list.values.slice(start, offsets[-1].as_py() - start)
        child_sink = sink.nested(pc.list_parent_indices(as_list))
        keys = json_string(pc.cast(entries.field(0), pa.string()))
        values = pc.fill_null(self._encode(entries.field(1), where + "{}", child_sink), JSON_NULL)
        pairs = pc.binary_join_element_wise(keys, values, ":")
        offsets = pc.subtract(offsets, pa.scalar(start, pa.int32()))
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, pairs, mask=array.is_null()), ",")
        return pc.binary_join_element_wise("{", joined, "}", "")

    def _struct(self, array: pa.Array, where: str, sink: _Sink) -> pa.Array:
        dtype = array.type
        parts: list[pa.Array | str] = []
        for i in range(dtype.num_fields):
            name = dtype.field(i).name
            # StructArray.field ignores the parent's own slice offset; flatten applies it.
            child = array.flatten()[i] if array.offset else array.field(i)
            encoded = pc.fill_null(self._encode(child, f"{where}.{name}", sink), JSON_NULL)
            parts.append(pc.binary_join_element_wise(orjson.dumps(name).decode() + ":", encoded, ""))
        body = pc.binary_join_element_wise(*parts, ",") if parts else pa.repeat("", len(array))
        whole = pc.binary_join_element_wise("{", body, "}", "")
        return pc.if_else(array.is_valid(), whole, pa.scalar(None, pa.string()))

    # -- problems -----------------------------------------------------------------------------------

    def _nullify(self, array: pa.Array, mask: pa.Array, sink: _Sink, reason: str) -> pa.Array:
        """Report the masked values as a problem and null them (sent as null, or their row rejected)."""
        mask = pc.fill_null(mask, False)
        if not pc.any(mask).as_py():
            return array
        if self.invalid_values == "reject":
            sink.report(mask, reason)
        return pc.if_else(mask, pa.scalar(None, array.type), array)


@dataclass(frozen=True)
class _Sink:
    """Where problems go: the batch's Problems, through the parent-row indices of enclosing lists."""

    problems: Problems
    parents: pa.Array | None  # child position -> top-level row (None at the top level)

    def nested(self, parent_indices: pa.Array) -> _Sink:
        parents = parent_indices if self.parents is None else pc.take(self.parents, parent_indices)
        return _Sink(self.problems, parents)

    def report(self, mask: pa.Array, reason: str) -> None:
        if self.parents is None:
            self.problems.add(mask, reason)
            return
        self.problems.add_rows(pc.filter(self.parents, pc.fill_null(mask, False)), reason)


def json_string(text: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (null stays null): escaped in bulk, control characters by orjson."""
    if not pc.any(pc.match_substring_regex(text, r'[\x00-\x1f"\\]')).as_py():
        return pc.binary_join_element_wise('"', text, '"', "")  # most batches: nothing to escape
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f]"), False)
    if not pc.any(control).as_py():
        return quoted
    fixed = [orjson.dumps(value).decode() for value in pc.filter(text, control).to_pylist()]
    return pc.replace_with_mask(quoted, control, pa.array(fixed, pa.string()))


def _python_mask(text: pa.Array, candidates: pa.Array, test: Callable[[str], bool]) -> pa.Array:
    """A mask of the candidate values for which ``test`` holds (Python per candidate: only rare values)."""
    candidates = pc.fill_null(candidates, False)
    picked = pc.filter(text, candidates).to_pylist()
    hits = [value is not None and test(value) for value in picked]
    return pc.replace_with_mask(pa.repeat(False, len(text)), candidates, pa.array(hits, pa.bool_()))


def _past_long(text: str) -> bool:
    return not -INT64_MAX - 1 <= int(decimal.Decimal(text)) <= INT64_MAX


def _loses_digits_as_double(text: str) -> bool:
    exact = decimal.Decimal(text)
    return decimal.Decimal(repr(float(exact))) != exact


def _not_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return True
    return False


def _date_reason(where: str, ticks: pa.Array, out: pa.Array) -> str:
    picked = pc.filter(ticks, pc.fill_null(out, False))
    below = pc.any(pc.less(picked, 0)).as_py()
    above = pc.any(pc.greater(picked, 0)).as_py()
    side = "before 0001-01-01 (or -infinity)" if below and not above else "after 9999-12-31 (or infinity)"
    if below and above:
        side = "outside 0001-01-01..9999-12-31 (or ±infinity)"
    return f"{where}: a date {side} is not a date Iterable can store"
