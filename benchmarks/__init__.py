"""miniconv's benchmarks: ``python -m benchmarks ops | train mnist | train cats-dogs | transfer``, ``python -m benchmarks.step_times``.

Run from the repository root; results go to ``benchmarks/results/``. Every comparison runs each
contestant in its own process through one protocol, ``benchmarks.harness``:

    harness                       worker protocol, alternating rounds, best round, ratios, writing results
    ops, contestants, cases, report   layer by layer against TensorFlow and PyTorch
    train, train_mnist, train_cats_dogs, training, engines   training epochs of the course models
                                  (the recipes' models; one epoch clock, ``miniconv.callbacks.EpochClock``)
    step_times                    per-step times of the MNIST convnet, miniconv against Keras
    transfer                      EfficientNet-Lite0 feature extraction and a fine-tuning epoch (issue 21)
    step_profile                  where one miniconv training step goes (one process, no harness)
    transfer_profile              where EfficientNet-Lite0's predict and fine-tuning step go, by kind of step
    common                        the call timer, FLOP counts, machine information
"""
