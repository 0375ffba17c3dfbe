"""HIPS autograd: reverse mode over autograd.numpy, eager (it has no compiler)."""
from graphad.bench.peers import missing, op_chain

LABEL = "HIPS autograd"
MODULES = ("autograd", "autograd.numpy")


def available(ctx):
    return missing(MODULES)


def chain(x0, n_ops):
    import autograd
    import autograd.numpy as anp
    g = autograd.grad(lambda x: anp.sum(op_chain(x, n_ops, anp.sin, anp.tanh)))
    return lambda: g(x0)


def _loss(params, X, y):
    import autograd.numpy as anp
    h = X
    k = len(params) // 2
    for i in range(k):
        h = anp.dot(h, params[2 * i]) + params[2 * i + 1]
        if i < k - 1:
            h = anp.maximum(h, 0)
    z = h - anp.max(h, axis=1, keepdims=True)
    logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(logp[anp.arange(len(y)), y])


def mlp_grad(p):
    import autograd
    params = [a for pair in zip(p["Ws"], p["bs"]) for a in pair]
    g = autograd.grad(_loss)
    return lambda: g(params, p["X"], p["y"])


def train_step(p, lr):
    import autograd
    params = [a.copy() for pair in zip(p["Ws"], p["bs"]) for a in pair]
    vg = autograd.value_and_grad(_loss)

    def run():
        loss, grads = vg(params, p["X"], p["y"])
        for q, g in zip(params, grads):
            q -= lr * g
        return loss
    return run


def jacobian(p):
    import autograd
    import autograd.numpy as anp
    W1, W2 = p["W1"], p["W2"]
    j = autograd.jacobian(lambda x: anp.tanh(anp.dot(W2, anp.tanh(anp.dot(W1, x)))))
    return {"jacobian": lambda: j(p["x"])}


def second_order(p):
    import autograd
    import autograd.numpy as anp
    A = p["A"]

    def f(x):
        return anp.sum(anp.log(1 + anp.exp(anp.dot(A, x)))) + 0.5 * anp.dot(x, x)
    g = autograd.grad(f)
    hv = autograd.hessian_vector_product(f)
    return {"grad": lambda: g(p["x"]), "hvp": lambda: hv(p["x"], p["v"])}


def linalg(p):
    import autograd
    import autograd.numpy as anp
    C, c = p["C"], p["c"]

    def eigh_loss(S):
        w, V = anp.linalg.eigh(S)
        return anp.sum(c * w) + anp.sum(C * V * V)
    g = {"logdet": autograd.grad(lambda A: anp.linalg.slogdet(A)[1]),
         "inv": autograd.grad(lambda A: anp.sum(C * anp.linalg.inv(A))),
         "solve": autograd.grad(lambda A, b: anp.sum(c * anp.linalg.solve(A, b)), (0, 1)),
         "eigh": autograd.grad(eigh_loss)}
    return {"logdet": lambda: g["logdet"](p["A"]), "inv": lambda: g["inv"](p["A"]),
            "solve": lambda: g["solve"](p["A"], p["b"]), "eigh": lambda: g["eigh"](p["S"])}


def array_api(p):
    import autograd
    import autograd.numpy as anp
    c = p["c"]
    fs = {"var": (lambda x: anp.sum(anp.var(x, axis=0, ddof=1)), "x"),
          "tensordot": (lambda a: anp.sum(anp.tensordot(a, p["b"], 2) * c), "a"),
          "tril": (lambda x: anp.sum(anp.tril(x, -1) * c), "x"),
          "cumsum": (lambda x: anp.sum(anp.cumsum(x, axis=1) * c), "x")}
    out = {}
    for k, (f, arg) in fs.items():
        x, g = p[arg], autograd.grad(f)
        out[k] = {"forward": lambda f=f, x=x: f(x), "backward": lambda g=g, x=x: g(x)}
    return out


def version():
    from importlib.metadata import version
    return version("autograd")
