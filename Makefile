# The two commands of the README. Each sets up what it needs by itself.
PRUNE_GYM = .venv/bin/prune-gym

.PHONY: run test
# Prune the ResNet-20 that ships (trained on Fashion-MNIST): search a policy that keeps 25% of
# its MACs, drawing on the history library (which holds 0.2 and 0.3, not 0.25), print it,
# export the slim model (timed against the original), plot the learning curve, and fine-tune
# the slim model for one epoch.
run:
	@scripts/bootstrap.sh --data
	$(PRUNE_GYM) search --model resnet20 --dataset fashion-mnist --ratio 0.25 --trials 200 \
		--history runs/quickstart.h5 --out runs/quickstart --plot runs/quickstart.png
	$(PRUNE_GYM) finetune runs/quickstart --epochs 1

test:
	@scripts/bootstrap.sh --data
	.venv/bin/python -m pytest -q --durations=10 -n auto
