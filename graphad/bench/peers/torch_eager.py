"""PyTorch eager: torch.autograd on CPU tensors made from the problem's NumPy arrays (same
dtype)."""
from graphad.bench.peers import missing, op_chain

LABEL = "PyTorch eager"
MODULES = ("torch",)


def available(ctx):
    return missing(MODULES)


def _t(a):
    import torch
    return torch.from_numpy(a) if hasattr(a, "dtype") and a.shape else torch.tensor(a)


def chain(x0, n_ops):
    import torch
    x0t = torch.tensor(x0)

    def run():
        x = x0t.detach().requires_grad_(True)
        op_chain(x, n_ops, torch.sin, torch.tanh).sum().backward()
        return x.grad
    return run


def _model(Ws, bs):
    import torch
    layers = []
    for W, b in zip(Ws, bs):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=_t(W).dtype)
        with torch.no_grad():
            lin.weight.copy_(_t(W.T.copy()))
            lin.bias.copy_(_t(b))
        layers += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def mlp_grad(p):
    import torch
    model = _model(p["Ws"], p["bs"])
    X, y = _t(p["X"]), _t(p["y"])
    params = list(model.parameters())

    def run():
        loss = torch.nn.functional.cross_entropy(model(X), y)
        return torch.autograd.grad(loss, params)
    return run


def train_step(p, lr):
    import torch
    model = _model(p["Ws"], p["bs"])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    X, y = _t(p["X"]), _t(p["y"])
    ce = torch.nn.functional.cross_entropy

    def run():
        opt.zero_grad()
        loss = ce(model(X), y)
        loss.backward()
        opt.step()
        return loss
    return run


def linalg(p):
    import torch
    T = {k: _t(v) for k, v in p.items()}

    def grad_of(loss, *names):
        def run():
            xs = [T[k].clone().requires_grad_(True) for k in names]
            return torch.autograd.grad(loss(*xs), xs)
        return run

    def eigh_loss(S):
        w, V = torch.linalg.eigh(S)
        return (T["c"] * w).sum() + (T["C"] * V * V).sum()
    return {"logdet": grad_of(lambda A: torch.linalg.slogdet(A)[1], "A"),
            "inv": grad_of(lambda A: (T["C"] * torch.linalg.inv(A)).sum(), "A"),
            "solve": grad_of(lambda A, b: (T["c"] * torch.linalg.solve(A, b)).sum(), "A", "b"),
            "eigh": grad_of(eigh_loss, "S")}


def array_api(p):
    import torch
    t = {k: _t(v) for k, v in p.items()}
    c = t["c"]
    fs = {"var": (lambda x: torch.var(x, dim=0, correction=1).sum(), "x"),
          "tensordot": (lambda a: (torch.tensordot(a, t["b"], 2) * c).sum(), "a"),
          "tril": (lambda x: (torch.tril(x, -1) * c).sum(), "x"),
          "cumsum": (lambda x: (torch.cumsum(x, 1) * c).sum(), "x")}
    out = {}
    for k, (f, arg) in fs.items():
        x = t[arg]

        def fwd(f=f, x=x):
            return f(x.detach().requires_grad_(True))

        def bwd(f=f, x=x):
            xx = x.detach().requires_grad_(True)
            f(xx).backward()
            return xx.grad
        out[k] = {"forward": fwd, "backward": bwd}
    return out


def matmul(a, b):
    import torch
    at, bt = _t(a), _t(b)
    return lambda: torch.matmul(at, bt)


def version():
    import torch
    return torch.__version__
