"""logfactory: raw logs in, typed events out. The public SDK is what ``__all__`` names."""

from logfactory.event import Event, Header
from logfactory.record import Record
from logfactory.subscribe import Subscriber, tail

__all__ = ["Event", "Header", "Record", "Subscriber", "tail"]
