"""Regenerate src/kefu/safety/injection_source.npz from the dev halves (see kefu.evals.injection_source_train).

HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_injection_source.py --data ../shared/eval
"""

from kefu.evals.injection_source_train import main

if __name__ == "__main__":
    main()
