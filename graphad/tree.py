"""Nested containers of arrays ("pytrees", as in JAX): what the transforms and ga.compile accept
as arguments and outputs.

A tree is a tuple, list, namedtuple or dict (any dict type, keys kept in their order) of trees,
None (an empty tree: no leaves), or a leaf: anything else (an array, a Tensor, a number).
flatten(tree) -> (leaves, treedef); unflatten(treedef, leaves) rebuilds a tree of the same
structure.  A treedef is hashable (when the dict keys are), so ga.compile keys its cache on it.

    leaves, td = flatten({"W": W, "b": (b1, b2)})     # [W, b1, b2]
    unflatten(td, [gW, gb1, gb2])                       # {"W": gW, "b": (gb1, gb2)}
"""

LEAF = None           # the treedef of a single leaf
_NONE = ("none",)     # the treedef of None


def is_container(x):
    return x is None or isinstance(x, (tuple, list, dict))


def flatten(tree):
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    if tree is None:
        return _NONE
    if isinstance(tree, (tuple, list)):
        return ("seq", type(tree), tuple([_flatten(x, leaves) for x in tree]))
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("map", type(tree), keys, tuple([_flatten(tree[k], leaves) for k in keys]))
    leaves.append(tree)
    return LEAF


def unflatten(treedef, leaves):
    it = iter(leaves)
    out = _unflatten(treedef, it)
    if next(it, _NONE) is not _NONE:
        raise ValueError("unflatten: more leaves than the tree has")
    return out


def _unflatten(td, it):
    if td is LEAF:
        return next(it)
    if td is _NONE or td == _NONE:
        return None
    if td[0] == "seq":
        kind, children = td[1], td[2]
        vals = [_unflatten(c, it) for c in children]
        if kind is tuple or kind is list:
            return kind(vals)
        return kind(*vals) if hasattr(kind, "_fields") else kind(vals)   # namedtuples
    kind, keys, children = td[1], td[2], td[3]
    vals = [_unflatten(c, it) for c in children]
    return kind(zip(keys, vals))


def num_leaves(treedef):
    if treedef is LEAF:
        return 1
    if treedef == _NONE:
        return 0
    return sum(num_leaves(c) for c in treedef[-1])


def describe(treedef):
    """A short readable spelling of a structure, for error messages."""
    if treedef is LEAF:
        return "*"
    if treedef == _NONE:
        return "None"
    if treedef[0] == "seq":
        inner = ", ".join(describe(c) for c in treedef[2])
        return f"[{inner}]" if treedef[1] is list else f"({inner})"
    return "{" + ", ".join(f"{k!r}: {describe(c)}" for k, c in zip(treedef[2], treedef[3])) + "}"


def map_leaves(fn, tree):
    leaves, td = flatten(tree)
    return unflatten(td, [fn(x) for x in leaves])


def flatten_as(treedef, tree, what="value"):
    """The leaves of `tree` in the order of `treedef`'s structure (dicts matched by key, so a
    cotangent dict in another key order still lines up); ValueError when the structures differ."""
    leaves = []
    _flatten_as(treedef, tree, leaves, treedef, what)
    return leaves


def _flatten_as(td, t, leaves, whole, what):
    if td is LEAF:
        leaves.append(t)
        return
    if td == _NONE:
        if t is not None:
            raise ValueError(f"{what}: expected the structure {describe(whole)}, got None "
                             f"where the structure has None")
        return
    if td[0] == "seq":
        if not isinstance(t, (tuple, list)) or len(t) != len(td[2]):
            raise ValueError(f"{what}: expected the structure {describe(whole)}, got "
                             f"{describe(flatten(t)[1])}")
        for c, x in zip(td[2], t):
            _flatten_as(c, x, leaves, whole, what)
        return
    if not isinstance(t, dict) or set(t) != set(td[2]):
        raise ValueError(f"{what}: expected the structure {describe(whole)}, got "
                         f"{describe(flatten(t)[1])}")
    for k, c in zip(td[2], td[3]):
        _flatten_as(c, t[k], leaves, whole, what)
