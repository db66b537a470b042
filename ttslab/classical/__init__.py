"""Classical statistical parametric synthesis: GMM, HMM/HSMM, forced alignment, MLPG, voice conversion (written from scratch; parity-tested against scikit-learn and hmmlearn)."""
