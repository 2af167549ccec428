"""Tests of the ``spread`` module against a live daemon.

Run from the repository root::

    SPREAD_LIB=target/debug/libspread.so SPREAD_TEST_DAEMON=4803 \\
        python3 -m unittest discover -s python/tests -t python

or let the tests start a daemon: ``SPREAD_DAEMON_BIN=/path/to/spread`` instead of
``SPREAD_TEST_DAEMON`` (see ``daemon.py``). Without either the tests fail, they do not skip.
"""

from __future__ import annotations

import faulthandler
import os
import select
import socket
import subprocess
import sys
import threading
import unittest
import uuid
from typing import List, Union

import spread

from .daemon import Daemon

#: Longest wait for one expected message.
MESSAGE_SECONDS = 10.0
#: Watchdog for a whole test: a hang (e.g. a blocked call holding the interpreter lock) ends
#: the run with tracebacks instead of never finishing.
TEST_SECONDS = 60

DAEMON = Daemon()


def setUpModule() -> None:
    unittest.addModuleCleanup(DAEMON.stop)
    DAEMON.start(lambda address: spread.connect(address, "", 0, 0).disconnect())


def unique(prefix: str) -> str:
    """A group name no other test or session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def receive_within(mbox: spread.Mailbox, seconds: float = MESSAGE_SECONDS):
    readable, _, _ = select.select([mbox], [], [], seconds)
    if not readable:
        raise AssertionError(f"no message within {seconds} s on {mbox!r}")
    return mbox.receive()


Message = Union[spread.RegularMsgType, spread.MembershipMsgType]


class SpreadTestCase(unittest.TestCase):
    def setUp(self) -> None:
        faulthandler.dump_traceback_later(TEST_SECONDS, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def connect(self, name: str = "", membership: int = 1) -> spread.Mailbox:
        mbox = spread.connect(DAEMON.address, name, 0, membership)
        self.addCleanup(mbox.disconnect)
        return mbox

    def membership(self, mbox: spread.Mailbox) -> spread.MembershipMsgType:
        msg = receive_within(mbox)
        self.assertIsInstance(msg, spread.MembershipMsgType)
        return msg

    def regular(self, mbox: spread.Mailbox) -> spread.RegularMsgType:
        msg = receive_within(mbox)
        self.assertIsInstance(msg, spread.RegularMsgType)
        return msg


class ModuleTest(unittest.TestCase):
    def test_version(self) -> None:
        self.assertEqual(spread.version(), (5, 0, 1))

    def test_constants_of_sp_h(self) -> None:
        expected = {
            "UNRELIABLE_MESS": 0x1, "RELIABLE_MESS": 0x2, "FIFO_MESS": 0x4, "CAUSAL_MESS": 0x8,
            "AGREED_MESS": 0x10, "SAFE_MESS": 0x20, "REGULAR_MESS": 0x3F, "SELF_DISCARD": 0x40,
            "DROP_RECV": 0x01000000, "REG_MEMB_MESS": 0x1000, "TRANSITION_MESS": 0x2000,
            "CAUSED_BY_JOIN": 0x100, "CAUSED_BY_LEAVE": 0x200, "CAUSED_BY_DISCONNECT": 0x400,
            "CAUSED_BY_NETWORK": 0x800, "MEMBERSHIP_MESS": 0x3F00, "ENDIAN_RESERVED": 0x80000080,
            "RESERVED": 0x003FC000, "REJECT_MESS": 0x00400000, "ACCEPT_SESSION": 1,
            "ILLEGAL_SPREAD": -1, "COULD_NOT_CONNECT": -2, "REJECT_QUOTA": -3, "REJECT_NO_NAME": -4,
            "REJECT_ILLEGAL_NAME": -5, "REJECT_NOT_UNIQUE": -6, "REJECT_VERSION": -7,
            "CONNECTION_CLOSED": -8, "REJECT_AUTH": -9, "ILLEGAL_SESSION": -11,
            "ILLEGAL_SERVICE": -12, "ILLEGAL_MESSAGE": -13, "ILLEGAL_GROUP": -14,
            "BUFFER_TOO_SHORT": -15, "GROUPS_TOO_SHORT": -16, "MESSAGE_TOO_LONG": -17,
            "NET_ERROR_ON_SESSION": -18, "SP_BUG": -19, "ILLEGAL_TIME": -20,
            "LOW_PRIORITY": 0, "MEDIUM_PRIORITY": 1, "HIGH_PRIORITY": 2, "DEFAULT_SPREAD_PORT": 4803,
            "SPREAD_VERSION": 5 << 24, "MAX_GROUP_NAME": 32, "MAX_PRIVATE_NAME": 10,
            "MAX_PROC_NAME": 20, "MAX_CLIENT_SCATTER_ELEMENTS": 100,
            "DEFAULT_BUFFER_SIZE": 10000, "DEFAULT_GROUPS_SIZE": 10,
        }
        for name, value in expected.items():
            with self.subTest(name=name):
                self.assertEqual(getattr(spread, name), value)

    def test_type_names_of_spreadmodule(self) -> None:
        self.assertIs(spread.MailboxType, spread.Mailbox)
        self.assertTrue(issubclass(spread.error, Exception))

    def test_missing_library_is_a_clear_import_error(self) -> None:
        env = dict(os.environ, SPREAD_LIB="/nonexistent/libspread.so.3")
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        result = subprocess.run(
            [sys.executable, "-c", "import spread"], cwd=here, env=env, capture_output=True, text=True, timeout=60
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImportError", result.stderr)
        self.assertIn("SPREAD_LIB", result.stderr)


class ConnectTest(SpreadTestCase):
    def test_private_group_carries_the_name(self) -> None:
        name = uuid.uuid4().hex[:8]
        mbox = self.connect(name)
        self.assertTrue(mbox.private_group.startswith(f"#{name}#"), mbox.private_group)
        self.assertIsInstance(mbox.fileno(), int)

    def test_empty_name_gets_a_random_one(self) -> None:
        a, b = self.connect(), self.connect()
        self.assertTrue(a.private_group.startswith("#"))
        self.assertNotEqual(a.private_group, b.private_group)

    def test_duplicate_name_is_rejected(self) -> None:
        name = uuid.uuid4().hex[:8]
        self.connect(name)
        with self.assertRaises(spread.error) as caught:
            spread.connect(DAEMON.address, name)
        self.assertEqual(caught.exception.args[0], spread.REJECT_NOT_UNIQUE)
        self.assertEqual(caught.exception.code, spread.REJECT_NOT_UNIQUE)
        self.assertIsInstance(caught.exception.args[1], str)

    def test_no_daemon_cannot_connect(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(spread.error) as caught:
            spread.connect(f"{port}@127.0.0.1")
        self.assertEqual(caught.exception.args[0], spread.COULD_NOT_CONNECT)

    def test_closed_mailbox_refuses_calls(self) -> None:
        mbox = spread.connect(DAEMON.address)
        mbox.disconnect()
        mbox.disconnect()
        calls = [
            lambda: mbox.join("g"),
            lambda: mbox.leave("g"),
            lambda: mbox.multicast(spread.SAFE_MESS, "g", b"x"),
            lambda: mbox.multigroup_multicast(spread.SAFE_MESS, ("g",), b"x"),
            mbox.receive,
            mbox.poll,
            mbox.fileno,
        ]
        for call in calls:
            with self.assertRaises(spread.error) as caught:
                call()
            self.assertEqual(caught.exception.args[0], spread.ILLEGAL_SESSION)

    def test_context_manager_disconnects(self) -> None:
        with spread.connect(DAEMON.address) as mbox:
            mbox.poll()
        with self.assertRaises(spread.error):
            mbox.poll()


class MembershipTest(SpreadTestCase):
    def test_join_leave_disconnect(self) -> None:
        group = unique("memb")
        a = self.connect()
        a.join(group)
        first = self.membership(a)
        self.assertEqual(first.group, group)
        self.assertEqual(first.msg_subtype, spread.REG_MEMB_MESS)
        self.assertEqual(first.reason, spread.CAUSED_BY_JOIN)
        self.assertEqual(first.members, (a.private_group,))
        self.assertEqual(first.changed_member, a.private_group)
        self.assertEqual(first.extra, (a.private_group,))

        b = spread.connect(DAEMON.address)
        b.join(group)
        seen_by_a, seen_by_b = self.membership(a), self.membership(b)
        for msg in (seen_by_a, seen_by_b):
            self.assertEqual(msg.reason, spread.CAUSED_BY_JOIN)
            self.assertEqual(sorted(msg.members), sorted([a.private_group, b.private_group]))
            self.assertEqual(msg.changed_member, b.private_group)
            self.assertEqual(msg.extra, (b.private_group,))
        self.assertEqual(seen_by_a.group_id, seen_by_b.group_id)
        self.assertNotEqual(first.group_id, seen_by_a.group_id)
        self.assertEqual(hash(seen_by_a.group_id), hash(seen_by_b.group_id))
        self.assertRegex(repr(first.group_id), r"^<group_id [0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}>$")

        b.disconnect()
        gone = self.membership(a)
        self.assertEqual(gone.reason, spread.CAUSED_BY_DISCONNECT)
        self.assertEqual(gone.members, (a.private_group,))
        self.assertEqual(gone.changed_member, b.private_group)

        a.leave(group)
        left = self.membership(a)
        self.assertEqual(left.group, group)
        self.assertEqual(left.msg_subtype, 0)
        self.assertEqual(left.reason, spread.CAUSED_BY_LEAVE)
        self.assertEqual(left.members, ())
        self.assertIsNone(left.changed_member)

    def test_leave_seen_by_the_others(self) -> None:
        group = unique("leave")
        a, b = self.connect(), self.connect()
        a.join(group)
        self.membership(a)
        b.join(group)
        self.membership(a)
        self.membership(b)
        b.leave(group)
        msg = self.membership(a)
        self.assertEqual(msg.reason, spread.CAUSED_BY_LEAVE)
        self.assertEqual(msg.msg_subtype, spread.REG_MEMB_MESS)
        self.assertEqual(msg.changed_member, b.private_group)

    def test_without_membership_only_data_arrives(self) -> None:
        group = unique("nomemb")
        quiet = self.connect(membership=0)
        quiet.join(group)
        sender = self.connect()
        sender.multicast(spread.AGREED_MESS, group, b"data")
        msg = self.regular(quiet)
        self.assertEqual(msg.message, b"data")

    def test_illegal_group_name(self) -> None:
        mbox = self.connect()
        with self.assertRaises(spread.error) as caught:
            mbox.join("bad name")
        self.assertEqual(caught.exception.args[0], spread.ILLEGAL_GROUP)


class MessageTest(SpreadTestCase):
    def joined(self) -> tuple:
        group = unique("msg")
        mbox = self.connect()
        mbox.join(group)
        self.membership(mbox)
        return mbox, group

    def test_round_trip(self) -> None:
        mbox, group = self.joined()
        sent = mbox.multicast(spread.SAFE_MESS, group, b"hello\0world", 42)
        self.assertEqual(sent, 11)
        msg = self.regular(mbox)
        self.assertEqual(msg.sender, mbox.private_group)
        self.assertEqual(msg.groups, (group,))
        self.assertEqual(msg.message, b"hello\0world")
        self.assertEqual(msg.msg_type, 42)
        self.assertEqual(msg.endian, 0)

    def test_every_service_and_text_data(self) -> None:
        mbox, group = self.joined()
        services = [spread.UNRELIABLE_MESS, spread.RELIABLE_MESS, spread.FIFO_MESS,
                    spread.CAUSAL_MESS, spread.AGREED_MESS, spread.SAFE_MESS]
        for service in services:
            mbox.multicast(service, group, f"svc {service}", -1)
        for service in services:
            msg = self.regular(mbox)
            self.assertEqual(msg.message, f"svc {service}".encode())
            self.assertEqual(msg.msg_type, -1)

    def test_large_message_grows_the_buffer(self) -> None:
        mbox, group = self.joined()
        body = bytes(range(256)) * 400  # 102400 bytes, ten times the first buffer
        self.assertEqual(mbox.multicast(spread.RELIABLE_MESS, group, body), len(body))
        self.assertEqual(self.regular(mbox).message, body)

    def test_many_groups_grow_the_group_list(self) -> None:
        mbox, group = self.joined()
        groups = (group,) + tuple(unique("other") for _ in range(spread.DEFAULT_GROUPS_SIZE + 5))
        mbox.multigroup_multicast(spread.FIFO_MESS, groups, bytearray(b"many"), 3)
        msg = self.regular(mbox)
        self.assertEqual(msg.groups, groups)
        self.assertEqual(msg.message, b"many")
        self.assertEqual(msg.msg_type, 3)

    def test_message_to_a_private_group(self) -> None:
        mbox, _ = self.joined()
        other = self.connect()
        other.multicast(spread.RELIABLE_MESS, mbox.private_group, memoryview(b"direct"))
        msg = self.regular(mbox)
        self.assertEqual((msg.sender, msg.groups, msg.message), (other.private_group, (mbox.private_group,), b"direct"))

    def test_self_discard(self) -> None:
        mbox, group = self.joined()
        mbox.multicast(spread.SAFE_MESS | spread.SELF_DISCARD, group, b"not for me")
        mbox.multicast(spread.SAFE_MESS, group, b"for me")
        self.assertEqual(self.regular(mbox).message, b"for me")

    def test_argument_checks(self) -> None:
        mbox, group = self.joined()
        with self.assertRaises(ValueError):
            mbox.multicast(spread.DROP_RECV, group, b"x")
        with self.assertRaises(TypeError):
            mbox.multigroup_multicast(spread.SAFE_MESS, group, b"x")
        with self.assertRaises(ValueError):
            mbox.multigroup_multicast(spread.SAFE_MESS, (), b"x")
        with self.assertRaises(TypeError):
            mbox.multigroup_multicast(spread.SAFE_MESS, (group, 7), b"x")
        with self.assertRaises(spread.error) as caught:
            mbox.multicast(spread.SAFE_MESS, group, b"x" * 200_000)
        self.assertEqual(caught.exception.args[0], spread.MESSAGE_TOO_LONG)

    def test_poll_counts_waiting_bytes(self) -> None:
        mbox, group = self.joined()
        self.assertEqual(mbox.poll(), 0)
        mbox.multicast(spread.SAFE_MESS, group, b"ping")
        readable, _, _ = select.select([mbox.fileno()], [], [], MESSAGE_SECONDS)
        self.assertTrue(readable)
        self.assertGreater(mbox.poll(), 0)
        mbox.receive()
        self.assertEqual(mbox.poll(), 0)


class ThreadTest(SpreadTestCase):
    def test_blocked_receive_lets_other_threads_send(self) -> None:
        mbox = self.connect()
        group = unique("thr")
        mbox.join(group)
        self.membership(mbox)
        got: List[Message] = []
        # Blocks inside the library before anything is sent: only works if the call does not
        # hold the interpreter lock (the watchdog ends the run otherwise).
        receiver = threading.Thread(target=lambda: got.append(mbox.receive()), daemon=True)
        receiver.start()
        receiver.join(0.3)
        self.assertTrue(receiver.is_alive())
        mbox.multicast(spread.AGREED_MESS, group, b"wake up")
        receiver.join(MESSAGE_SECONDS)
        self.assertFalse(receiver.is_alive())
        self.assertEqual(got[0].message, b"wake up")

    def test_two_senders_one_receiver_share_a_mailbox(self) -> None:
        mbox = self.connect()
        group = unique("share")
        mbox.join(group)
        self.membership(mbox)
        per_sender = 200
        received: List[bytes] = []
        errors: List[BaseException] = []

        def receive_all() -> None:
            try:
                for _ in range(2 * per_sender):
                    received.append(receive_within(mbox).message)
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        def send(tag: str) -> None:
            try:
                for i in range(per_sender):
                    mbox.multicast(spread.FIFO_MESS, group, f"{tag}:{i}:" + "x" * (i % 50))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=receive_all, daemon=True)]
        threads += [threading.Thread(target=send, args=(tag,), daemon=True) for tag in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(MESSAGE_SECONDS * 3)
            self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        for tag in "ab":
            numbers = [int(m.split(b":")[1]) for m in received if m.startswith(tag.encode() + b":")]
            self.assertEqual(numbers, list(range(per_sender)), f"sender {tag} in FIFO order")


if __name__ == "__main__":
    unittest.main()
