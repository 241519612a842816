"""Analysis: accuracy metrics with finite-sample floors, the digits' metrics, likelihoods."""
