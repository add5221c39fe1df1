"""An operator's `events:`: threshold-reset rules (spiking neurons), as text with locations.

    events:
      spike:                       # the event's name (recordable as "op/spike")
        when: "v > v_th"           # condition on the state the previous step left
        reset: ["v = v_r"]         # assignments applied after the step (one or a list)
        emit: spike                # optional: an input(...) that receives the spike train H/dt
        refractory: t_ref          # optional: a duration during which the resets are held
        surrogate_slope: 1.0       # optional: the fast sigmoid's slope for gradients (default 1)
        description: ...           # optional text

The texts stay text here: the IR stage parses them with the equation grammar and checks their
names (modelc/events.py). What an event means step by step is written in codegen/step.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import EventFormatError, Location, did_you_mean
from .marked_yaml import MarkedDict, MarkedStr, excerpt, marked_text
from .validation import check_name, string_list

EVENT_KEYS = ("when", "reset", "emit", "refractory", "surrogate_slope", "description")


@dataclass
class EventSpec:
    """One entry of an operator's `events:`."""

    name: str
    when: str                                   # the condition's text (a MarkedStr from a file)
    reset: list[str] = field(default_factory=list)  # assignments "x = expression"
    emit: str | None = None                     # the input that receives the spike train
    refractory: str | None = None               # the refractory duration's text
    description: str = ""
    location: Location | None = None
    emit_location: Location | None = None
    slope: float | None = None                  # the surrogate gradient's slope (None: the default)


def event_specs(body: MarkedDict, inherited: dict[str, EventSpec]) -> dict[str, EventSpec]:
    """An operator's events: its parent's, updated by the body's `events:` (by name)."""
    events = dict(inherited)
    if "events" not in body:
        return events
    raw = body["events"]
    if not isinstance(raw, MarkedDict):
        raise EventFormatError("'events:' must map event names to {when: ..., reset: [...]}",
                               body.where_value("events"), 'e.g. events: {spike: {when: "v > v_th", reset: ["v = v_r"]}}')
    for name, entry in raw.items():
        events[name] = _event(name, entry, raw)
    return events


def _event(name: Any, entry: Any, raw: MarkedDict) -> EventSpec:
    location = raw.where(name)
    check_name(name, location, "event")
    if not isinstance(entry, MarkedDict):
        raise EventFormatError(f"event '{name}' must be a mapping with 'when:', got {excerpt(entry)}",
                               raw.where_value(name), 'e.g. {when: "v > v_th", reset: ["v = v_r"]}')
    for key in entry:
        if key not in EVENT_KEYS:
            raise EventFormatError(f"unknown key '{key}' in event '{name}'", entry.where(key),
                                   did_you_mean(str(key), EVENT_KEYS) or f"allowed keys: {', '.join(EVENT_KEYS)}")
    if "when" not in entry:
        raise EventFormatError(f"event '{name}' has no 'when:' condition", location,
                               'add a condition on a state, e.g. when: "v > v_th"')
    when = _text(entry, "when", name)
    reset = string_list(entry["reset"], entry.where_value("reset"), "reset") if entry.get("reset") is not None else []
    emit = entry.get("emit")
    if emit is not None:
        check_name(emit, entry.where_value("emit"), "emitted input")
    refractory = _text(entry, "refractory", name) if entry.get("refractory") is not None else None
    description = entry.get("description") or ""
    if not isinstance(description, str):
        raise EventFormatError(f"'description:' of event '{name}' must be text", entry.where_value("description"))
    return EventSpec(str(name), when, reset, None if emit is None else str(emit), refractory, str(description),
                     location, entry.where_value("emit") if emit is not None else None, _slope(entry, name))


def _slope(entry: MarkedDict, name: str) -> float | None:
    value = entry.get("surrogate_slope")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise EventFormatError(f"'surrogate_slope:' of event '{name}' must be a positive number, got {excerpt(value)}",
                               entry.where_value("surrogate_slope"))
    return float(value)


def _text(entry: MarkedDict, key: str, name: str) -> MarkedStr:
    """An expression's text; a number YAML read as one (refractory: 2.0) becomes its text."""
    value, where = entry[key], entry.where_value(key)
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise EventFormatError(f"'{key}:' of event '{name}' must be an expression, got {excerpt(value)}", where,
                               "quote expressions that YAML could read as something else")
    return value if isinstance(value, MarkedStr) else marked_text(str(value), where)
