"""Loading ``libspread.so.3`` and declaring the ``SP_*`` functions the module calls.

The library is the one named by the environment variable ``SPREAD_LIB`` (a path) when it is
set, else the one whose path the installer wrote into ``library-path`` beside this file, else
whatever the system loader finds as ``libspread.so.3``.
"""

from __future__ import annotations

import ctypes
import os

from ._constants import MAX_GROUP_NAME

LIBRARY_VAR = "SPREAD_LIB"
SONAME = "libspread.so.3"
#: Written by ``spread-install``: the installed library's absolute path, so that an installed
#: package finds it without ``LD_LIBRARY_PATH`` or ``ldconfig``.
INSTALLED_PATH_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "library-path")

#: One group name field, ``char[MAX_GROUP_NAME]``.
Name = ctypes.c_char * MAX_GROUP_NAME


class GroupIdStruct(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int32 * 3)]


class VsSetInfo(ctypes.Structure):
    _fields_ = [("num_members", ctypes.c_uint), ("members_offset", ctypes.c_uint)]


class MembershipInfo(ctypes.Structure):
    _fields_ = [
        ("gid", GroupIdStruct),
        ("changed_member", Name),
        ("num_vs_sets", ctypes.c_uint),
        ("my_vs_set", VsSetInfo),
    ]


def _library_path() -> str:
    explicit = os.environ.get(LIBRARY_VAR)
    if explicit:
        return explicit
    try:
        with open(INSTALLED_PATH_FILE, "rb") as f:
            return os.fsdecode(f.read().rstrip(b"\n"))
    except FileNotFoundError:
        return SONAME


def _load() -> ctypes.CDLL:
    path = _library_path()
    try:
        # CDLL releases the GIL during calls, so a blocking receive does not stop other threads.
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"spread: cannot load the Spread client library {path!r} "
            f"(set {LIBRARY_VAR} to its path): {e}"
        ) from e
    c_int, c_char_p, c_short = ctypes.c_int, ctypes.c_char_p, ctypes.c_short
    int_p = ctypes.POINTER(c_int)
    names = ctypes.POINTER(Name)
    signatures = {
        "SP_version": (c_int, [int_p, int_p, int_p]),
        "SP_connect": (c_int, [c_char_p, c_char_p, c_int, c_int, int_p, ctypes.c_char_p]),
        "SP_disconnect": (c_int, [c_int]),
        "SP_join": (c_int, [c_int, c_char_p]),
        "SP_leave": (c_int, [c_int, c_char_p]),
        "SP_multicast": (c_int, [c_int, c_int, c_char_p, c_short, c_int, c_char_p]),
        "SP_multigroup_multicast": (c_int, [c_int, c_int, c_int, names, c_short, c_int, c_char_p]),
        "SP_receive": (
            c_int,
            [
                c_int,
                int_p,
                ctypes.c_char_p,
                c_int,
                int_p,
                names,
                ctypes.POINTER(c_short),
                int_p,
                c_int,
                ctypes.c_void_p,
            ],
        ),
        "SP_poll": (c_int, [c_int]),
        "SP_get_memb_info": (c_int, [ctypes.c_void_p, c_int, ctypes.POINTER(MembershipInfo)]),
        "SP_get_vs_set_members": (c_int, [ctypes.c_void_p, ctypes.POINTER(VsSetInfo), names, c_int]),
        "SP_strerror": (c_char_p, [c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


lib = _load()
