"""Learned scores (docs/learned.md): score models trained from data by denoising score
matching. Above physics; independent of the samplers (a model meets the score-model
interface, `physics.interfaces.ScoreModel`).

    datasets      built-in data sets, files and images as points; standardisation
    network       the network N_θ, its configuration (DEFAULTS) and time conditioning
    derivatives   the batched pass (value, ∇, ∇², ∇Δ through the network) and probe estimates
    model         `LearnedScore` (the score-model interface), `load_model`
    checkpoint    a model's folder: written as one consistent set, verified by a checksum
    training      `train`: denoising score matching, resumable
"""
