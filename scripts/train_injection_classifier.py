"""Regenerate src/kefu/safety/injection_classifier.npz from the dev halves (see kefu.evals.injection_train).

HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_injection_classifier.py --data ../shared/eval
"""

from kefu.evals.injection_train import main

if __name__ == "__main__":
    main()
