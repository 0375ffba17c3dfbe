"""torchdiffeq: odeint and odeint_adjoint on a fixed RK4 grid (PyTorch eager underneath)."""
from graphad.bench.peers import missing

LABEL = "torchdiffeq"
MODULES = ("torch", "torchdiffeq")


def available(ctx):
    return missing(MODULES)


def odeint(p, n, adjoint):
    import torch
    from torchdiffeq import odeint, odeint_adjoint

    class F(torch.nn.Module):
        def __init__(self, W):
            super().__init__()
            self.W = torch.nn.Parameter(torch.tensor(W))

        def forward(self, t, y):
            return torch.tanh(self.W @ y)
    func = F(p["W"])
    c = torch.tensor(p["c"])
    t = torch.tensor([0.0, 1.0], dtype=func.W.dtype)
    solve = odeint_adjoint if adjoint else odeint
    # torchdiffeq's "rk4" is the 3/8 rule; "rk4" here means the classical tableau of the others
    opts = dict(method="rk4", options=dict(step_size=1.0 / n, perturb=False))
    if adjoint:
        opts.update(adjoint_method="rk4", adjoint_options=dict(step_size=1.0 / n))

    def run():
        y0 = torch.tensor(p["y0"], requires_grad=True)
        loss = (c * solve(func, y0, t, **opts)[-1]).sum()
        return torch.autograd.grad(loss, (func.W, y0))
    return run


def version():
    from importlib.metadata import version
    return version("torchdiffeq")
