"""docs/models.md is generated from the YAML; it must not drift from the shipped models."""
from pathlib import Path

from modelc.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs" / "models.md"


def test_models_page_is_up_to_date(tmp_path):
    fresh = tmp_path / "models.md"
    assert main(["docs", "-o", str(fresh)]) == 0
    assert DOCS.read_text() == fresh.read_text(), "run `modelc docs -o docs/models.md` and commit the page"


def test_models_page_documents_every_shipped_model():
    text = DOCS.read_text()
    for path in ["neuron_model_templates.rate_neurons.leaky_integrator.tanh",
                 "model_templates.neural_mass_models.qif.qif", "model_templates.neural_mass_models.jansenrit.JRC",
                 "model_templates.neural_mass_models.wilsoncowan.WC", "model_templates.oscillators.kuramoto.kuramoto",
                 "model_templates.oscillators.kuramoto.kuramoto_oa", "model_templates.oscillators.vanderpol.vdp",
                 "model_templates.oscillators.stuartlandau.sl", "model_templates.oscillators.fitzhugh_nagumo.fhn",
                 "neuron_model_templates.conductance.hodgkin_huxley.hh", "model_templates.chaos.lorenz.lorenz"]:
        assert f"## `{path}`" in text
