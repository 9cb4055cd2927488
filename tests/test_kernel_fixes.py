"""The sliced wait: a reply whose wake-up was lost is still received (nbclient issue 312)."""
import asyncio

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

from recos_utils.runner import kernel_fixes


class LostWakeUpSocket:
    """A socket holding a reply whose readable edge was lost during a send: the first wait
    never wakes by itself; asking again (a new poll) finds the message."""

    def __init__(self):
        self.polls = []

    async def poll(self, timeout=None):
        self.polls.append(timeout)
        if len(self.polls) == 1:
            if timeout is None:
                await asyncio.Event().wait()      # nothing will ever wake this wait
            await asyncio.sleep(timeout / 1000)
            return 0
        return 1


def channel():
    ch = AsyncZMQSocketChannel.__new__(AsyncZMQSocketChannel)
    ch.socket = LostWakeUpSocket()

    async def recv(**kwargs):
        return {"msg_type": "execute_reply"}

    ch._recv = recv
    return ch


@pytest.fixture
def unpatched(monkeypatch):
    original = AsyncZMQSocketChannel.get_msg
    original = getattr(original, "_recos_original", original)
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", original)   # restored afterwards
    monkeypatch.setattr(kernel_fixes, "SLICE_S", 0.05)


def test_without_the_fix_a_lost_wake_up_hangs(unpatched):
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(channel().get_msg(), 0.5))


def test_with_the_fix_the_reply_arrives_after_one_slice(unpatched):
    kernel_fixes.poll_in_slices()
    kernel_fixes.poll_in_slices()                 # idempotent: one layer of slicing
    ch = channel()
    assert asyncio.run(asyncio.wait_for(ch.get_msg(), 2.0)) == {"msg_type": "execute_reply"}
    assert ch.socket.polls == [50, 50]            # one 50 ms slice, then found


def test_timed_waits_are_left_alone(unpatched):
    kernel_fixes.poll_in_slices()
    ch = channel()
    from queue import Empty
    with pytest.raises(Empty):
        asyncio.run(ch.get_msg(timeout=0.01))
    assert ch.socket.polls == [10]
