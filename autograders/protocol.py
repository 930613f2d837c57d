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
import os
import select
import struct
import time

HEADER = struct.Struct("!Q")
LARGEST = 256 << 20  # no honest message comes near it: outputs are capped per step, answers per test


def send(stream, data: dict) -> None:
    payload = json.dumps(data).encode()
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read(fd: int, size: int, deadline: float | None) -> bytes:
    """Up to `size` bytes from `fd`, stopping at end of file or at the deadline (time.monotonic())."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                break
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(stream, deadline: float | None = None, largest: int = LARGEST) -> dict | None:
    """The next message, or None when the other side has gone, sent something that is not a message, announced
    more than `largest` bytes, or was not done by `deadline` (a time.monotonic() value; None: wait as long as it takes).

    It reads the file descriptor itself, never a size taken on trust: the other side may be a student's code.
    """
    fd = stream.fileno()
    head = _read(fd, HEADER.size, deadline)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > largest:
        return None
    payload = _read(fd, size, deadline)
    if len(payload) != size:
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
