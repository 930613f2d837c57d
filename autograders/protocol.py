"""The messages between the grader's sandbox host and the worker inside the sandbox.

Every message is its length, then that many bytes of JSON. The host drives one submission as:

    host -> worker   {"begin": {limits}}                      a fresh child process for the submission
    host -> worker   {"run": source, "collect": grade_id|null}  one step (a cell, or one part of a test cell)
    worker -> host   {"outputs": [...], "answers": {grade_id: base64}, "ended": null|why}
    ...              one "run" per step, each sent only when the step before it has finished
    host -> worker   {"end": true}
    worker -> host   {"seconds": s}                           the child and everything it started are gone

The host never sends a step before it is due, so the process that runs the student's code holds no
test before that test runs. This module is imported inside the sandbox: the standard library only.
"""

from __future__ import annotations

import json
import struct

HEADER = struct.Struct("!Q")


def send(stream, data: dict) -> None:
    payload = json.dumps(data).encode()
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def receive(stream) -> dict | None:
    """The next message, or None when the other side has gone (or sent something that is not a message)."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    payload = stream.read(size)
    if len(payload) != size:
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
