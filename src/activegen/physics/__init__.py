"""The physics, bottom layer (imports nothing from the other sub-packages):

    stepping            the one-step formulas (exact OU step, thermal kick, active update,
                        default step), each written once
    processes           the forward process `ActiveOU` and its exact moments
    targets             Gaussian-mixture targets, their diffused and joint laws
    scores              score models (`MixtureScore`, `ScoreDerivs`: log p, S, ∇S, ∇(∇·S))
    forces              F_0, F_F, F_U, F_SC and their potentials, pure functions of the scores
    drivers             self-propulsions (active OU, run-and-tumble, active Brownian)
    activity_schedule   the activity schedule τ(t) and the forward process with it
    energetics          per-step heat, work and entropy increments
    interfaces          the `typing.Protocol`s a user's score model, process or driver meets
"""
