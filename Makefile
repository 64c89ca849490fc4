# The two commands of the README. Each sets up what it needs by itself.
PRUNE_GYM = .venv/bin/prune-gym

.PHONY: run test
run:
	@scripts/bootstrap.sh --data
	$(PRUNE_GYM) pretrain --model resnet20 --dataset fashion-mnist

test:
	@scripts/bootstrap.sh
	.venv/bin/python -m pytest -q
