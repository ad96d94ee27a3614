"""Fake upstream servers: real HTTP on loopback, scriptable, recording what they got."""

from .server import FakeUpstream, Recorded, Reply, Stream

__all__ = ["FakeUpstream", "Recorded", "Reply", "Stream"]
