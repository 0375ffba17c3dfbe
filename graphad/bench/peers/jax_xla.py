"""JAX on CPU, eager (op by op) and under jax.jit (XLA), float64 enabled so that every engine runs
the same dtype. XLA is told the suite's thread count before jax is first imported; the backend
starts inside the suite's CPU pinning, so its pool stays on those CPUs. Compilation is excluded
from step times (the warm-up call compiles) and reported separately where a workload says so."""
import os

from graphad.bench.peers import missing

LABEL = "JAX"
MODULES = ("jax", "jax.numpy")


def available(ctx):
    import sys
    if "jax" not in sys.modules:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           f"intra_op_parallelism_threads={ctx.threads}")
    why = missing(MODULES)
    if why:
        return why
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.numpy.ones(2).block_until_ready()
    except Exception as e:                           # no usable backend
        return f"jax unusable ({type(e).__name__}: {e})"
    return None


def _block(fn, *args):
    import jax
    return lambda: jax.block_until_ready(fn(*args))


def _maybe_jit(f, jit):
    import jax
    return jax.jit(f) if jit else f


def mlp_loss(params, X, y):
    import jax
    import jax.numpy as jnp
    h = X
    for W, b in params[:-1]:
        h = jax.nn.relu(h @ W + b)
    W, b = params[-1]
    logp = jax.nn.log_softmax(h @ W + b, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def mlp_grad(p, jit=True):
    import jax
    import jax.numpy as jnp
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(p["Ws"], p["bs"])]
    X, y = jnp.asarray(p["X"]), jnp.asarray(p["y"])
    return _block(_maybe_jit(jax.grad(mlp_loss), jit), params, X, y)


def train_step(p, lr, jit=True):
    import jax
    import jax.numpy as jnp
    state = {"params": [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(p["Ws"], p["bs"])]}
    X, y = jnp.asarray(p["X"]), jnp.asarray(p["y"])

    def update(params, X, y):
        loss, grads = jax.value_and_grad(mlp_loss)(params, X, y)
        return loss, jax.tree_util.tree_map(lambda q, g: q - lr * g, params, grads)
    update = _maybe_jit(update, jit)

    def run():
        loss, state["params"] = update(state["params"], X, y)
        return loss.block_until_ready()
    return run


def jacobian(p, jit):
    import jax
    import jax.numpy as jnp
    W1, W2, x = (jnp.asarray(p[k]) for k in ("W1", "W2", "x"))

    def f(x):
        return jnp.tanh(W2 @ jnp.tanh(W1 @ x))
    return {"jacfwd": _block(_maybe_jit(jax.jacfwd(f), jit), x),
            "jacrev": _block(_maybe_jit(jax.jacrev(f), jit), x)}


def second_order(p, jit):
    import jax
    import jax.numpy as jnp
    A, x, v = (jnp.asarray(p[k]) for k in ("A", "x", "v"))

    def f(x):
        return jnp.sum(jnp.log(1 + jnp.exp(A @ x))) + 0.5 * (x @ x)
    g = jax.grad(f)
    hvp = lambda x, v: jax.jvp(g, (x,), (v,))[1]      # noqa: E731
    # ga.hvp returns (grad, Hv); under jit, JAX computes only what is returned, so the same
    # outputs are a second case
    both = lambda x, v: jax.jvp(g, (x,), (v,))        # noqa: E731
    return {"grad": _block(_maybe_jit(g, jit), x), "hvp": _block(_maybe_jit(hvp, jit), x, v),
            "hvp with grad": _block(_maybe_jit(both, jit), x, v),
            "hessian": _block(_maybe_jit(jax.hessian(f), jit), x)}


def linalg(p, jit):
    import jax
    import jax.numpy as jnp
    J = {k: jnp.asarray(v) for k, v in p.items()}

    def eigh_loss(S):
        w, V = jnp.linalg.eigh(S)
        return jnp.sum(J["c"] * w) + jnp.sum(J["C"] * V * V)
    grads = {"logdet": (jax.grad(lambda A: jnp.linalg.slogdet(A)[1]), ("A",)),
             "inv": (jax.grad(lambda A: jnp.sum(J["C"] * jnp.linalg.inv(A))), ("A",)),
             "solve": (jax.grad(lambda A, b: jnp.sum(J["c"] * jnp.linalg.solve(A, b)),
                                argnums=(0, 1)), ("A", "b")),
             "eigh": (jax.grad(eigh_loss), ("S",))}
    return {k: _block(_maybe_jit(g, jit), *[J[n] for n in names])
            for k, (g, names) in grads.items()}


def odeint(p, n):
    """RK4 in lax.scan, jax.grad, jit (the direct method: XLA keeps the stages)."""
    import jax
    import jax.numpy as jnp
    h = 1.0 / n
    c = jnp.asarray(p["c"])

    def loss(W, y0):
        def step(y, _):
            k1 = jnp.tanh(W @ y)
            k2 = jnp.tanh(W @ (y + h / 2 * k1))
            k3 = jnp.tanh(W @ (y + h / 2 * k2))
            k4 = jnp.tanh(W @ (y + h * k3))
            return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None
        y, _ = jax.lax.scan(step, y0, None, length=n)
        return jnp.sum(c * y)
    return _block(jax.jit(jax.grad(loss, argnums=(0, 1))), jnp.asarray(p["W"]),
                  jnp.asarray(p["y0"]))


def version():
    import jax
    return jax.__version__
