"""torch.compile (inductor, CPU) of the PyTorch eager training step. Its first compile takes
about 30 s on the reference machine, so --quick skips it; it needs a C++ compiler."""
import shutil

from graphad.bench.peers import missing

LABEL = "torch.compile"
MODULES = ("torch",)


def available(ctx):
    why = missing(MODULES)
    if why:
        return why
    if ctx.quick:
        return "skipped at --quick (the first inductor compile takes ~30 s)"
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return "no C++ compiler for inductor"
    return None


def train_step(p, lr):
    import torch
    from graphad.bench.peers import torch_eager
    return torch.compile(torch_eager.train_step(p, lr))


def version():
    import torch
    return torch.__version__
