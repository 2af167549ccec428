"""Spread group communication for Python: the API of the classic ``SpreadModule`` extension,
in pure Python over the Spread client library (``libspread.so.3``) through :mod:`ctypes`.

>>> import spread
>>> mbox = spread.connect("4803@localhost", "me")
>>> mbox.join("chat")
>>> mbox.multicast(spread.SAFE_MESS, "chat", b"hello")
>>> msg = mbox.receive()          # a MembershipMsgType or a RegularMsgType

The library is the file named by the environment variable ``SPREAD_LIB`` if set, else the one
``spread-install`` installed with this package, else the system's ``libspread.so.3``. Every constant of ``sp.h`` is an attribute of this module. Calls
that fail raise :class:`error` with ``args == (code, text)``. A mailbox may be shared by
threads: a thread blocked in :meth:`Mailbox.receive` does not hold the interpreter lock.
"""

from __future__ import annotations

import ctypes
from typing import Iterable, Optional, Sequence, Tuple, Union

from ._constants import *  # noqa: F401,F403 -- the sp.h constants are the module's API
from ._constants import (
    ACCEPT_SESSION,
    AGREED_MESS,
    BUFFER_TOO_SHORT,
    CAUSAL_MESS,
    CAUSED_BY_DISCONNECT,
    CAUSED_BY_JOIN,
    CAUSED_BY_LEAVE,
    CAUSED_BY_NETWORK,
    CONNECTION_CLOSED,
    DEFAULT_BUFFER_SIZE,
    DEFAULT_GROUPS_SIZE,
    DEFAULT_SPREAD_PORT,
    FIFO_MESS,
    GROUPS_TOO_SHORT,
    ILLEGAL_MESSAGE,
    ILLEGAL_SESSION,
    MAX_GROUP_NAME,
    MEMBERSHIP_MESS,
    REG_MEMB_MESS,
    REGULAR_MESS,
    REJECT_MESS,
    RELIABLE_MESS,
    SAFE_MESS,
    SELF_DISCARD,
    SP_BUG,
    TRANSITION_MESS,
    UNRELIABLE_MESS,
)
from ._native import GroupIdStruct, MembershipInfo, Name, lib

__all__ = [
    "connect",
    "version",
    "error",
    "Mailbox",
    "MailboxType",
    "RegularMsgType",
    "MembershipMsgType",
    "GroupId",
]

Text = Union[str, bytes]
Data = Union[bytes, bytearray, memoryview, str]

#: Service bits a multicast may use.
_SEND_SERVICES = (
    UNRELIABLE_MESS | RELIABLE_MESS | FIFO_MESS | CAUSAL_MESS | AGREED_MESS | SAFE_MESS | SELF_DISCARD
)
_CAUSES = CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT | CAUSED_BY_NETWORK


class error(Exception):  # noqa: N801 -- the name SpreadModule gave it
    """A failed Spread call: ``args`` is ``(code, text)`` with the ``SP_*`` result code."""

    @property
    def code(self) -> int:
        return self.args[0]


def _fail(code: int) -> error:
    text = lib.SP_strerror(code)
    return error(code, text.decode("ascii", "replace") if text else "unrecognized error")


def _encode(value: Text) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _name(field: Union[bytes, "ctypes.Array[ctypes.c_char]"]) -> str:
    """A NUL-terminated name field as text (names are ASCII; nothing is lost either way)."""
    raw = bytes(field)
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _message_bytes(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


class GroupId:
    """Identifies one view of a group; equal ids name the same membership."""

    __slots__ = ("_id",)

    def __init__(self, ids: Iterable[int]) -> None:
        self._id: Tuple[int, int, int] = tuple(ids)  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupId):
            return NotImplemented
        return self._id == other._id

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return "<group_id %08X:%08X:%08X>" % tuple(i & 0xFFFFFFFF for i in self._id)


class RegularMsgType:
    """A data message.

    ``sender``: the sender's private group; ``groups``: the groups it was sent to;
    ``message``: the body; ``msg_type``: the sender's 16-bit message type; ``endian``: true
    when the sender's byte order differs from this machine's.
    """

    __slots__ = ("sender", "groups", "message", "msg_type", "endian")

    def __init__(self, sender: str, groups: Tuple[str, ...], message: bytes, msg_type: int, endian: int) -> None:
        self.sender = sender
        self.groups = groups
        self.message = message
        self.msg_type = msg_type
        self.endian = endian

    def __repr__(self) -> str:
        return (
            f"<RegularMsgType sender={self.sender!r} groups={self.groups!r} "
            f"msg_type={self.msg_type} len={len(self.message)}>"
        )


class MembershipMsgType:
    """A membership notice for ``group``.

    ``msg_subtype``: ``REG_MEMB_MESS`` or ``TRANSITION_MESS`` (0 when this session left the
    group); ``reason``: the ``CAUSED_BY_*`` bits; ``members``: the group's members after a
    regular membership; ``group_id``: the view's :class:`GroupId`; ``changed_member``: who
    joined, left or disconnected (``None`` otherwise); ``extra``: the members that came along
    with this session (for a join, leave or disconnect, the changed member; after a network
    change, this daemon's side of it).
    """

    __slots__ = ("reason", "msg_subtype", "group", "group_id", "members", "extra", "changed_member")

    def __init__(
        self,
        reason: int,
        msg_subtype: int,
        group: str,
        group_id: GroupId,
        members: Tuple[str, ...],
        extra: Tuple[str, ...],
        changed_member: Optional[str],
    ) -> None:
        self.reason = reason
        self.msg_subtype = msg_subtype
        self.group = group
        self.group_id = group_id
        self.members = members
        self.extra = extra
        self.changed_member = changed_member

    def __repr__(self) -> str:
        return (
            f"<MembershipMsgType group={self.group!r} subtype=0x{self.msg_subtype:x} "
            f"reason=0x{self.reason:x} members={self.members!r}>"
        )


def _membership(service: int, group: str, members: Tuple[str, ...], body: "ctypes.Array[ctypes.c_char]") -> MembershipMsgType:
    info = MembershipInfo()
    code = lib.SP_get_memb_info(body, service, ctypes.byref(info))
    if code < 0:
        raise _fail(code)
    changed: Optional[str] = None
    if service & REG_MEMB_MESS and service & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT):
        changed = _name(info.changed_member)
    extra: Tuple[str, ...] = ()
    count = info.my_vs_set.num_members
    if count:
        names = (Name * count)()
        code = lib.SP_get_vs_set_members(body, ctypes.byref(info.my_vs_set), names, count)
        if code < 0:
            raise _fail(code)
        extra = tuple(_name(n) for n in names)
    return MembershipMsgType(
        reason=service & _CAUSES,
        msg_subtype=service & (TRANSITION_MESS | REG_MEMB_MESS),
        group=group,
        group_id=GroupId(info.gid.id),
        members=members,
        extra=extra,
        changed_member=changed,
    )


class Mailbox:
    """A session with a Spread daemon; made by :func:`connect`.

    ``private_group`` is the session's private group name (``#name#daemon``). Usable as a
    context manager, which disconnects on exit.
    """

    def __init__(self, mbox: int, private_group: str) -> None:
        self._mbox = mbox
        self.private_group = private_group
        self._disconnected = False

    def _open(self, method: str) -> int:
        if self._disconnected:
            raise error(ILLEGAL_SESSION, f"{method}() called on closed mbox")
        return self._mbox

    def _check(self, code: int) -> int:
        """Raises for a negative result; these two codes mean the session is gone."""
        if code < 0:
            if code in (CONNECTION_CLOSED, ILLEGAL_SESSION):
                self._disconnected = True
            raise _fail(code)
        return code

    def fileno(self) -> int:
        """The session's socket descriptor, for ``select`` and friends (never read it)."""
        return self._open("fileno")

    def disconnect(self) -> None:
        """Ends the session; later calls raise :class:`error`. A second call does nothing."""
        if self._disconnected:
            return
        self._disconnected = True
        self._check(lib.SP_disconnect(self._mbox))

    def join(self, group: Text) -> None:
        """Joins ``group``; the membership notice arrives through :meth:`receive`."""
        self._check(lib.SP_join(self._open("join"), _encode(group)))

    def leave(self, group: Text) -> None:
        """Leaves ``group``."""
        self._check(lib.SP_leave(self._open("leave"), _encode(group)))

    @staticmethod
    def _service(service: int) -> int:
        if service & _SEND_SERVICES != service:
            raise ValueError("invalid service type")
        return service

    def multicast(self, service: int, group: Text, data: Data, msg_type: int = 0) -> int:
        """Sends ``data`` to ``group`` with ``service`` (e.g. ``SAFE_MESS``); returns its length."""
        mbox = self._open("multicast")
        body = _message_bytes(data)
        return self._check(
            lib.SP_multicast(mbox, self._service(service), _encode(group), msg_type, len(body), body)
        )

    def multigroup_multicast(self, service: int, groups: Sequence[Text], data: Data, msg_type: int = 0) -> int:
        """Sends ``data`` once to every group of the tuple ``groups``; returns its length."""
        if not isinstance(groups, (tuple, list)):
            raise TypeError("only tuples are allowed for groups")
        if not groups:
            raise ValueError("there must be at least one group in the tuple")
        fields = (Name * len(groups))()
        for field, group in zip(fields, groups):
            if not isinstance(group, (str, bytes)):
                raise TypeError("groups must be strings only")
            # Cut to the field as strncpy would; the library checks the names.
            encoded = _encode(group)[:MAX_GROUP_NAME]
            ctypes.memmove(field, encoded, len(encoded))
        mbox = self._open("multigroup_multicast")
        body = _message_bytes(data)
        return self._check(
            lib.SP_multigroup_multicast(
                mbox, self._service(service), len(groups), fields, msg_type, len(body), body
            )
        )

    def poll(self) -> int:
        """Bytes waiting on the session (more than 0 means :meth:`receive` will not block)."""
        return self._check(lib.SP_poll(self._open("poll")))

    def receive(self) -> Union[RegularMsgType, MembershipMsgType]:
        """Waits for the next message and returns it, whatever its size."""
        mbox = self._open("receive")
        max_groups, buffer_size = DEFAULT_GROUPS_SIZE, DEFAULT_BUFFER_SIZE
        sender = ctypes.create_string_buffer(MAX_GROUP_NAME)
        service, num_groups, endian = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        msg_type = ctypes.c_short()
        while True:
            groups = (Name * max_groups)()
            body = ctypes.create_string_buffer(buffer_size)
            service.value = 0
            size = lib.SP_receive(
                mbox,
                ctypes.byref(service),
                sender,
                max_groups,
                ctypes.byref(num_groups),
                groups,
                ctypes.byref(msg_type),
                ctypes.byref(endian),
                buffer_size,
                body,
            )
            if size == BUFFER_TOO_SHORT or size == GROUPS_TOO_SHORT:
                # The message stays queued; both needs are reported when known.
                if num_groups.value < 0:
                    max_groups = -num_groups.value
                if endian.value < 0:
                    buffer_size = -endian.value
                continue
            self._check(size)
            break
        svc = service.value & 0xFFFFFFFF
        names = tuple(_name(g) for g in groups[: num_groups.value])
        if svc & REGULAR_MESS and not svc & REJECT_MESS:
            return RegularMsgType(
                sender=_name(sender.raw),
                groups=names,
                message=ctypes.string_at(body, size),
                msg_type=msg_type.value,
                endian=endian.value,
            )
        if svc & MEMBERSHIP_MESS and not svc & REJECT_MESS:
            return _membership(svc, _name(sender.raw), names, body)
        raise error(ILLEGAL_MESSAGE, f"Unknown message type: 0x{svc:x}")

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __del__(self, _disconnect=lib.SP_disconnect) -> None:
        # A dropped mailbox ends its session, as SpreadModule's did. The function is bound
        # early because module globals may already be gone when this runs at exit.
        if not getattr(self, "_disconnected", True):
            self._disconnected = True
            _disconnect(self._mbox)

    def __repr__(self) -> str:
        state = "closed" if self._disconnected else f"fd {self._mbox}"
        return f"<Mailbox {self.private_group!r} {state}>"


#: The name SpreadModule exported for the mailbox type.
MailboxType = Mailbox


def connect(daemon: Optional[Text] = None, name: Text = "", priority: int = 0, membership: int = 1) -> Mailbox:
    """Connects to a Spread daemon and returns the session's :class:`Mailbox`.

    ``daemon``: ``"port"`` (local socket) or ``"port@host"``; default
    ``"4803@localhost"``. ``name``: the private name (up to 10 characters; empty lets the
    daemon pick a unique one). ``priority`` is unused by Spread. ``membership``: whether this
    session receives membership notices.
    """
    if daemon is None:
        daemon = f"{DEFAULT_SPREAD_PORT}@localhost"
    mbox = ctypes.c_int()
    private_group = ctypes.create_string_buffer(MAX_GROUP_NAME)
    code = lib.SP_connect(
        _encode(daemon), _encode(name), priority, 1 if membership else 0, ctypes.byref(mbox), private_group
    )
    if code != ACCEPT_SESSION:
        raise _fail(code)
    return Mailbox(mbox.value, _name(private_group.raw))


def version() -> Tuple[int, int, int]:
    """The library's version as ``(major, minor, patch)``."""
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if not lib.SP_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch)):
        raise error(SP_BUG, "SP_version failed")
    return major.value, minor.value, patch.value
