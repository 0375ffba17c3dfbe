# cython: language_level=3
"""A cache of the memory blocks under Python's small-object allocator, so that the memory of a
large graph is reused by the next one instead of being returned to the OS and faulted in again.

Every node is a few small objects (the Tensor, its 0-d value, its parents' tuple), which CPython
carves out of 1 MiB arenas.  When a graph is freed its arenas empty, and CPython unmaps them at
once; the next graph maps fresh ones, and the kernel faults in and zeroes each 4 KiB page on
first touch.  For a 200,000-op scalar chain that was 13,600 page faults per gradient, about a
fifth of its time.  This module installs an arena allocator (PyObject_SetArenaAllocator) that
keeps up to GRAPHAD_ARENA_CACHE_MB (default 64) MiB of freed blocks and hands them out again,
and passes everything else to the allocator it replaced.  GRAPHAD_ARENA_CACHE_MB=0 installs
nothing.  The cost: up to that much memory stays mapped after a large graph is gone.
"""
cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void *ctx
        void *(*alloc)(void *ctx, size_t size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    void PyObject_GetArenaAllocator(PyObjectArenaAllocator *allocator)
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator)

cdef enum:
    SLOTS = 1024

cdef PyObjectArenaAllocator _previous, _caching
cdef void *_blocks[SLOTS]       # freed blocks kept for reuse, the most recently freed last
cdef size_t _sizes[SLOTS]
cdef Py_ssize_t _count = 0
cdef size_t _held = 0           # bytes in the cache
cdef size_t _limit = 0          # the most it holds
cdef bint _installed = False
cdef Py_ssize_t _hits = 0, _misses = 0


cdef void *_alloc(void *ctx, size_t size) noexcept nogil:
    # CPython calls the arena allocator with the GIL held, so the cache needs no lock
    global _count, _held, _hits, _misses
    cdef Py_ssize_t i
    cdef void *p
    i = _count - 1
    while i >= 0:                   # the most recently freed block of this size: still warm
        if _sizes[i] == size:
            p = _blocks[i]
            _count -= 1
            _blocks[i] = _blocks[_count]
            _sizes[i] = _sizes[_count]
            _held -= size
            _hits += 1
            return p
        i -= 1
    _misses += 1
    return _previous.alloc(_previous.ctx, size)


cdef void _free(void *ctx, void *ptr, size_t size) noexcept nogil:
    global _count, _held
    if _count < SLOTS and _held + size <= _limit:
        _blocks[_count] = ptr
        _sizes[_count] = size
        _count += 1
        _held += size
        return
    _previous.free(_previous.ctx, ptr, size)


def install(double megabytes):
    """Keep up to `megabytes` MiB of freed arenas for reuse (0: install nothing; once installed,
    the limit can be changed, and blocks over it are returned at once)."""
    global _installed, _limit, _count, _held
    _limit = <size_t>(max(megabytes, 0.0) * (1 << 20))
    if not _installed:
        if _limit == 0:
            return
        PyObject_GetArenaAllocator(&_previous)
        _caching.ctx = NULL
        _caching.alloc = _alloc
        _caching.free = _free
        PyObject_SetArenaAllocator(&_caching)
        _installed = True
    while _held > _limit:
        _count -= 1
        _held -= _sizes[_count]
        _previous.free(_previous.ctx, _blocks[_count], _sizes[_count])


def stats():
    """(installed, bytes held, the limit, blocks handed out again, blocks the OS gave)."""
    return _installed, _held, _limit, _hits, _misses
