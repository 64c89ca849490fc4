# The two commands of the README. Each sets up what it needs by itself.
PRUNE_GYM = .venv/bin/prune-gym

.PHONY: run test
# Pretrain ResNet-20 on Fashion-MNIST (cached after the first run), search a policy that
# keeps 30% of its MACs, print it, export the slim model (timed against the original), plot
# the learning curve, and fine-tune the slim model for one epoch.
run:
	@scripts/bootstrap.sh --data
	$(PRUNE_GYM) pretrain --model resnet20 --dataset fashion-mnist
	$(PRUNE_GYM) search --model resnet20 --dataset fashion-mnist --ratio 0.3 --trials 300 \
		--history runs/quickstart.h5 --out runs/quickstart --plot runs/quickstart.png
	$(PRUNE_GYM) finetune runs/quickstart --epochs 1

test:
	@scripts/bootstrap.sh --data
	.venv/bin/python -m pytest -q --durations=10
