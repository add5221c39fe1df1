"""The seed example: a recurrent network of N=100 leaky-integrator tanh units.

    u_i' = -u_i/tau + I_i(t) + k * sum_j J_ij tanh(u_j),   J[i, j]: from unit j to unit i

10 000 Euler steps of dt = 1e-3 with a constant input of 1; obs["out"] row k holds u after
step k + 1 (time (k + 1) * dt). The plot goes to seed_rnn.png in the current folder, or to
the path given as the first argument:

    python examples/seed_rnn.py [out.png]
"""
import sys

import matplotlib

matplotlib.use("Agg")  # write a file; no window

from modelc import Network
import numpy as np

model = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
N = 100
J = np.random.randn(N, N)
net = Network(dt=1e-3, device="cpu")
net.add_diffeq_node("tanh", model, weights=J, source_var="tanh_op/r",
                    target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")
obs = net.run(inputs=np.ones((10000, N)))
ax = obs.plot("out")

path = sys.argv[1] if len(sys.argv) > 1 else "seed_rnn.png"
ax.set_title(f"{N} leaky-integrator tanh units")
ax.figure.savefig(path, dpi=100)
print(obs)
print(f"plot written to {path}")
