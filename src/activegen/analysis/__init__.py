"""Analysis of samples and models:

    metrics         accuracy with finite-sample floors (W1, histogram KL, moments; for
                    images Fréchet distance, k-NN precision/recall, memorisation)
    digit_metrics   the 8×8 digits' classifier features and floors
    likelihood      log-likelihoods by the probability-flow ODE, the entropy-rate bound
"""
