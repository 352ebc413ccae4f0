#!/usr/bin/python3
"""Generates tests/optim_expected.h: the step-by-step trajectories of
torch.optim.SGD, Adam and AdamW on a small fixed problem, for
tests/test_optim.c (which then needs no torch at run time).

The problem, all float32:
    h    = tanh(X @ W1 + b1)         X [5,4], W1 [4,3], b1 [3]
    out  = h @ W2 + b2               W2 [3,2], b2 [2]
    loss = mse_loss(out, Y)          Y [5,2], mean over the 10 elements
with the inputs and the initial weights written out below. Each
configuration starts from the same weights and runs STEPS full-batch steps
of zero_grad / forward / backward / optimizer.step(); per step we record the
loss (computed before the step, as smelt's program output) and every param
after the step, and after the last step the optimizer's state
(momentum_buffer, exp_avg, exp_avg_sq, step).

Usage (from the repository root):
    /usr/bin/python3 tests/crosscheck/gen_optim_expected.py > tests/optim_expected.h
"""
import sys

import torch

STEPS = 20

X = [[0.5, -1.2, 0.3, 0.8],
     [-0.7, 0.4, 1.1, -0.2],
     [1.5, 0.9, -0.6, 0.1],
     [-0.3, -0.8, 0.7, 1.3],
     [0.2, 1.4, -1.0, -0.9]]
Y = [[0.3, -0.5],
     [-0.2, 0.8],
     [0.9, 0.1],
     [-0.6, -0.4],
     [0.5, 0.7]]
INIT = [
    ("W1", [[0.21, -0.43, 0.35],
            [-0.12, 0.28, 0.47],
            [0.39, 0.05, -0.31],
            [-0.26, 0.44, 0.18]]),
    ("b1", [0.1, -0.05, 0.02]),
    ("W2", [[0.52, -0.37],
            [-0.29, 0.61],
            [0.33, 0.24]]),
    ("b2", [-0.08, 0.06]),
]

# name, kind, options as smelt spells them (every field explicit; the C test
# also checks that smelt's *_defaults give the same where it uses them).
SGD0 = dict(lr=0.0, momentum=0.0, dampening=0.0, weight_decay=0.0,
            nesterov=False, maximize=False)
ADAM0 = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
             maximize=False)
CASES = [
    ("sgd", "sgd", dict(SGD0, lr=0.1)),
    ("sgd_momentum", "sgd", dict(SGD0, lr=0.05, momentum=0.9)),
    ("sgd_momentum_dampening", "sgd", dict(SGD0, lr=0.05, momentum=0.9, dampening=0.1)),
    ("sgd_nesterov", "sgd", dict(SGD0, lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay_momentum", "sgd",
     dict(SGD0, lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd_maximize", "sgd", dict(SGD0, lr=0.05, maximize=True)),
    ("adam", "adam", dict(ADAM0, lr=1e-2)),
    ("adam_weight_decay", "adam", dict(ADAM0, lr=1e-2, weight_decay=0.1)),
    ("adam_maximize", "adam", dict(ADAM0, lr=1e-2, maximize=True)),
    ("adamw", "adamw", dict(ADAM0, lr=1e-2, weight_decay=1e-2)),
    ("adamw_custom", "adamw",
     dict(ADAM0, lr=1e-2, weight_decay=0.1, beta1=0.8, beta2=0.99, eps=1e-6)),
]


def make_optimizer(kind, o, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],
                               dampening=o["dampening"], weight_decay=o["weight_decay"],
                               nesterov=o["nesterov"], maximize=o["maximize"])
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
               weight_decay=o["weight_decay"], maximize=o["maximize"])


def torch_call(kind, o):
    if kind == "sgd":
        return ("torch.optim.SGD(lr=%r, momentum=%r, dampening=%r, weight_decay=%r, "
                "nesterov=%r, maximize=%r)" % (o["lr"], o["momentum"], o["dampening"],
                                               o["weight_decay"], o["nesterov"], o["maximize"]))
    return ("torch.optim.%s(lr=%r, betas=(%r, %r), eps=%r, weight_decay=%r, maximize=%r)"
            % ("Adam" if kind == "adam" else "AdamW", o["lr"], o["beta1"], o["beta2"],
               o["eps"], o["weight_decay"], o["maximize"]))


def run(kind, o):
    x = torch.tensor(X, dtype=torch.float32)
    y = torch.tensor(Y, dtype=torch.float32)
    params = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for _, v in INIT]
    w1, b1, w2, b2 = params
    opt = make_optimizer(kind, o, params)
    losses, trajectory = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        trajectory.append(flat(params))
    state = opt.state
    if kind == "sgd":
        first = flat([state[p]["momentum_buffer"] for p in params]) if o["momentum"] else None
        second, step = None, None
    else:
        first = flat([state[p]["exp_avg"] for p in params])
        second = flat([state[p]["exp_avg_sq"] for p in params])
        step = float(state[params[0]]["step"])
    return losses, trajectory, first, second, step


def flat(tensors):
    out = []
    for t in tensors:
        out.extend(t.detach().reshape(-1).tolist())
    return out


def f32(v):
    """A float32 value as a C literal that reads back exactly."""
    t = torch.tensor(v, dtype=torch.float32).item()
    if t != t or t in (float("inf"), float("-inf")):
        raise ValueError("non-finite value %r" % v)
    s = "%.9g" % t
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


def floats(vals, indent, per_line=6):
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append(indent + ", ".join(f32(v) for v in vals[i:i + per_line]) + ",")
    return "\n".join(lines)


def numel(v):
    return len(v) * numel(v[0]) if isinstance(v, list) else 1


def dims(v):
    return [len(v)] + dims(v[0]) if isinstance(v, list) else []


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    npar = sum(numel(v) for _, v in INIT)
    w = sys.stdout.write
    w("/* Generated by tests/crosscheck/gen_optim_expected.py with torch %s\n"
      " * (Python %s); do not edit. Regenerate from the repository root with\n"
      " *   /usr/bin/python3 tests/crosscheck/gen_optim_expected.py > tests/optim_expected.h\n"
      " *\n"
      " * PyTorch's torch.optim (single-tensor code path, float32 on the CPU) on\n"
      " *   loss = mse_loss(tanh(X @ W1 + b1) @ W2 + b2, Y)\n"
      " * from the initial weights below: per step the loss (before the step)\n"
      " * and every param after it, packed in the order W1, b1, W2, b2 (row-major),\n"
      " * and after the last step the optimizer's state, packed the same way. */\n"
      % (torch.__version__, sys.version.split()[0]))
    w("#ifndef SMELT_TESTS_OPTIM_EXPECTED_H\n#define SMELT_TESTS_OPTIM_EXPECTED_H\n\n")
    w("#include <stdbool.h>\n#include <stdint.h>\n\n")
    w("#define OPTIM_STEPS %d\n#define OPTIM_NPARAMS %d\n#define OPTIM_PACKED %d\n\n"
      % (STEPS, len(INIT), npar))
    w("static const int64_t optim_X_dims[2] = {%d, %d};\n" % tuple(dims(X)))
    w("static const float optim_X[%d] = {\n%s\n};\n" % (numel(X), floats(flat([torch.tensor(X)]), "    ")))
    w("static const int64_t optim_Y_dims[2] = {%d, %d};\n" % tuple(dims(Y)))
    w("static const float optim_Y[%d] = {\n%s\n};\n\n" % (numel(Y), floats(flat([torch.tensor(Y)]), "    ")))
    w("/* The params: name, shape, offset in the packed vectors, initial value. */\n")
    w("typedef struct optim_param {\n  const char *name;\n  int rank;\n  int64_t dims[2];\n"
      "  int offset, numel;\n  const float *init;\n} optim_param;\n\n")
    off = 0
    rows = []
    for name, v in INIT:
        w("static const float optim_%s_init[%d] = {\n%s\n};\n"
          % (name, numel(v), floats(flat([torch.tensor(v)]), "    ")))
        d = dims(v) + [0] * (2 - len(dims(v)))
        rows.append('    {"%s", %d, {%d, %d}, %d, %d, optim_%s_init},'
                    % (name, len(dims(v)), d[0], d[1], off, numel(v), name))
        off += numel(v)
    w("static const optim_param optim_params[OPTIM_NPARAMS] = {\n%s\n};\n\n" % "\n".join(rows))
    w("/* One configuration: the options (as smelt_sgd_options / smelt_adam_options\n"
      " * spell them), the torch.optim call, and PyTorch's trajectory. */\n")
    w("typedef struct optim_case {\n"
      "  const char *name;\n"
      "  const char *kind; /* \"sgd\", \"adam\" or \"adamw\" */\n"
      "  const char *torch_call;\n"
      "  double lr, momentum, dampening, weight_decay, beta1, beta2, eps;\n"
      "  bool nesterov, maximize;\n"
      "  float loss[OPTIM_STEPS];\n"
      "  float params[OPTIM_STEPS][OPTIM_PACKED];\n"
      "  /* after the last step: momentum_buffer (SGD with momentum) or exp_avg\n"
      "   * and exp_avg_sq (Adam, AdamW); has_state says which are set */\n"
      "  int has_state;\n"
      "  float state[2][OPTIM_PACKED];\n"
      "  double step; /* Adam's state step after the last step, 0 for SGD */\n"
      "} optim_case;\n\n")
    # torch.optim's own defaults, for smelt_sgd_defaults / smelt_adam_defaults /
    # smelt_adamw_defaults.
    probe = [torch.zeros(1, requires_grad=True)]
    d_sgd = torch.optim.SGD(probe, lr=0.1).defaults
    w("/* torch.optim.SGD(lr=0.1).defaults */\n")
    w("static const double optim_torch_sgd_defaults[4] = /* lr, momentum, dampening, "
      "weight_decay */\n    {%r, %r, %r, %r};\n"
      % tuple(float(d_sgd[k]) for k in ("lr", "momentum", "dampening", "weight_decay")))
    w("static const bool optim_torch_sgd_flags[2] = /* nesterov, maximize */ {%s, %s};\n"
      % tuple("true" if d_sgd[k] else "false" for k in ("nesterov", "maximize")))
    for cls in (torch.optim.Adam, torch.optim.AdamW):
        d = cls(probe).defaults
        w("/* torch.optim.%s().defaults: lr, beta1, beta2, eps, weight_decay */\n" % cls.__name__)
        w("static const double optim_torch_%s_defaults[5] = {%r, %r, %r, %r, %r};\n"
          % (cls.__name__.lower(), float(d["lr"]), float(d["betas"][0]), float(d["betas"][1]),
             float(d["eps"]), float(d["weight_decay"])))
    w("\n")
    w("static const optim_case optim_cases[] = {\n")
    for name, kind, o in CASES:
        losses, traj, first, second, step = run(kind, o)
        get = lambda k, d=0.0: o.get(k, d)
        w("  {\n")
        w('    .name = "%s",\n    .kind = "%s",\n    .torch_call = "%s",\n' % (name, kind, torch_call(kind, o)))
        w("    .lr = %r, .momentum = %r, .dampening = %r, .weight_decay = %r,\n"
          % (get("lr"), get("momentum"), get("dampening"), get("weight_decay")))
        w("    .beta1 = %r, .beta2 = %r, .eps = %r,\n" % (get("beta1"), get("beta2"), get("eps")))
        w("    .nesterov = %s, .maximize = %s,\n"
          % ("true" if get("nesterov", False) else "false", "true" if get("maximize") else "false"))
        w("    .loss = {\n%s\n    },\n" % floats(losses, "      "))
        w("    .params = {\n")
        for k, p in enumerate(traj):
            w("      /* after step %d */\n      {\n%s\n      },\n" % (k + 1, floats(p, "        ")))
        w("    },\n")
        n_state = (first is not None) + (second is not None)
        w("    .has_state = %d,\n" % n_state)
        if n_state:
            w("    .state = {\n")
            for s in (first, second):
                if s is not None:
                    w("      {\n%s\n      },\n" % floats(s, "        "))
            w("    },\n")
        w("    .step = %r,\n" % (step if step is not None else 0.0))
        w("  },\n")
    w("};\n\n#define OPTIM_NCASES ((int)(sizeof optim_cases / sizeof optim_cases[0]))\n\n#endif\n")


if __name__ == "__main__":
    main()
