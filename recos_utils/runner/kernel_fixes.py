"""A workaround for a rare hang when papermill executes a cell that shows widgets (Chapter 1).

nbclient mimics an Output widget: each output the widget captures is sent back to the
kernel as a ``comm_msg`` on the *shell* socket, while the same client is waiting on that
socket for the cell's ``execute_reply`` (jupyter/nbclient issue 312). ZeroMQ signals
"readable" as an edge; when the reply arrives while the send is in progress that edge can
be lost, and a wait without a timeout (nbclient waits for the reply with ``timeout=None``)
then never wakes, although the kernel has finished and sits idle. Large outputs (such as
Chapter 1's double-resolution figure inside ``interact``) make the window wider.

:func:`poll_in_slices` makes every untimed wait of jupyter_client's asyncio channels a
loop of 0.1-second waits. Each new wait asks the socket afresh whether a message is there,
so a lost edge costs at most a tenth of a second instead of the whole run. ``recos-book``
applies it before it executes a chapter; a plain ``papermill`` call does not get it.

Measured here (ipykernel 7.4, jupyter_client 8.10, nbclient 0.11, pyzmq 27.3): a notebook
of 60 ``interact`` cells, each showing a double-resolution figure, hung on its first
execution without the patch (killed after 300 s; the kernel idle); with it, three runs in
a row finished in 28-30 s. Chapter 1 itself hung once here before the patch (in a
whole-book timing run); twelve separate runs of it did not.

:data:`KERNEL_ARGS` quiets the kernel's own log in ``recos-book``'s output. Every chapter's
kernel logged ``[IPKernelApp] WARNING | Kernel is running over TCP without encryption``
(ipykernel 7 says so for any local kernel on TCP, which is how papermill starts one), and
now and then ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` when the chapter
had *finished*: jupyter_client's ``shutdown_kernel`` sends SIGINT before the shutdown
request, and the kernel logs it if the signal lands while it handles a message. Neither is
about the chapter; a cell's error still reaches the run through papermill (with the failing
cell named) and a dead kernel as nbclient's ``DeadKernelError``.
"""
from __future__ import annotations

from queue import Empty

__all__ = ["poll_in_slices", "SLICE_S", "KERNEL_ARGS"]

#: Extra command-line arguments of every chapter's kernel: only critical kernel log lines.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]

#: Longest single wait, in seconds, of an untimed ``get_msg``.
SLICE_S = 0.1


def poll_in_slices() -> None:
    """Patch ``AsyncZMQSocketChannel.get_msg(timeout=None)`` to wait in slices (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    if getattr(original, "_recos_sliced", False):
        return

    async def get_msg(self, timeout: float | None = None):
        if timeout is not None:
            return await original(self, timeout)
        while True:
            try:
                return await original(self, SLICE_S)
            except Empty:
                continue

    get_msg._recos_sliced = True
    get_msg._recos_original = original
    get_msg.__doc__ = original.__doc__
    AsyncZMQSocketChannel.get_msg = get_msg
