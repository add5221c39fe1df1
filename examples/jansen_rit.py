"""Jansen-Rit in one call, as PyRates users run a circuit: modelc.simulate.

The circuit model_templates.neural_mass_models.jansenrit.JRC (pyramidal cells, excitatory
and inhibitory interneurons) with its default external input u = 220 1/s oscillates at about
11 Hz. 2 s of Euler steps of 0.1 ms, recorded every 1 ms; the plot of the pyramidal potential
(the EEG-like signal, v_e + v_i) goes to jansen_rit.png, or to the path given first:

    python examples/jansen_rit.py [out.png]
"""
import sys

import matplotlib

matplotlib.use("Agg")  # write a file; no window

import modelc

obs = modelc.simulate("model_templates.neural_mass_models.jansenrit.JRC", T=2.0, dt=1e-4,
                      outputs={"v_e": "pc/rpo_e_ext/v", "v_i": "pc/rpo_i/v"},
                      sampling_step_size=1e-3)
eeg = obs["v_e"] + obs["v_i"]  # (2000, 1): the pyramidal cells' membrane potential in mV
ax = obs.plot(eeg)
ax.set_ylabel("v_pc (mV)")

path = sys.argv[1] if len(sys.argv) > 1 else "jansen_rit.png"
ax.set_title("Jansen-Rit cortical column")
ax.figure.savefig(path, dpi=100)
print(f"wrote {path}; {obs}")
