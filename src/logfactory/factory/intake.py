"""Intake: turn bus messages from ``logs.raw`` into Records, or into dead letters."""

from __future__ import annotations

import msgspec

from logfactory.bus.base import Message
from logfactory.factory.model import Position
from logfactory.record import Record, decode_record

__all__ = ["read_record"]


def read_record(msg: Message) -> tuple[Record, Position] | str:
    """The Record in ``msg`` with its position, or the reason it is not one."""
    try:
        record = decode_record(msg.value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"not a logfactory record: {exc}"
    return record, Position(msg.topic, msg.partition, msg.offset)
