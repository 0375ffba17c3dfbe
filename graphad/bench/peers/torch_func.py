"""torch.func: PyTorch's functional transforms (jacfwd, jacrev, hessian, jvp of grad)."""
from graphad.bench.peers import missing

LABEL = "torch.func"
MODULES = ("torch", "torch.func")


def available(ctx):
    return missing(MODULES)


def jacobian(p):
    import torch
    import torch.func as tf
    W1, W2, x = (torch.from_numpy(p[k]) for k in ("W1", "W2", "x"))

    def f(x):
        return torch.tanh(W2 @ torch.tanh(W1 @ x))
    jf, jr = tf.jacfwd(f), tf.jacrev(f)
    return {"jacfwd": lambda: jf(x), "jacrev": lambda: jr(x)}


def second_order(p):
    import torch
    import torch.func as tf
    A, x, v = (torch.from_numpy(p[k]) for k in ("A", "x", "v"))

    def f(x):
        return torch.sum(torch.log(1 + torch.exp(A @ x))) + 0.5 * (x @ x)
    g, h = tf.grad(f), tf.hessian(f)
    return {"grad": lambda: g(x), "hvp": lambda: tf.jvp(g, (x,), (v,))[1],
            "hessian": lambda: h(x)}


def version():
    import torch
    return torch.__version__
