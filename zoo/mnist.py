"""VLAE on statically binarized MNIST (paper Table 1: 79.03 nats test NLL).

Decoder context: the paper's stack of 6 masked 3x3 convolutions (mask A then
5 x mask B), conditioned on a 32-d vector latent; AF prior; free bits.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "mnist"
  c.description = "VLAE, static binarized MNIST, 6-layer 3x3 local PixelCNN + AF prior"
  c.paper_nll = 79.03   # nats, VLAE paper Table 1 (static MNIST)
  c.paper_bits_per_dim = None
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "binarized_mnist"   # binarized_mnist | mnist | omniglot | cifar10 | synthetic
  c.data.source = "auto"               # auto (npz if VLAE_DATA_DIR/data_dir set, else tfds) | tfds | npz
  c.data.data_dir = ""                 # folder with the documented .npz files; default $VLAE_DATA_DIR
  c.data.binarization = "static"       # static (data already {0,1}) | dynamic | threshold | none
  c.data.image_shape = (28, 28, 1)
  c.data.train_split = "train"
  c.data.valid_split = "valid"
  c.data.test_split = "test"
  c.data.binarization_seed = 0         # the fixed test-set binarization for dynamic MNIST
  c.data.tfds_data_dir = ""            # TFDS data_dir ("" = the TFDS default)
  c.data.synthetic_size = 0            # synthetic dataset: training examples (0 = 256)

  c.model = ml_collections.ConfigDict()
  c.model.likelihood = "bernoulli"     # bernoulli | logistic_mixture
  c.model.num_mixtures = 10
  c.model.num_bits = 8
  c.model.latent_kind = "vector"       # vector | spatial
  c.model.latent_dim = 32
  c.model.latent_channels = 0
  c.model.num_resolution_changes = 2   # encoder downsamples / conditioning upsamples by 2 this often
  c.model.encoder_filters = 64
  c.model.encoder_blocks = 2
  c.model.cond_filters = 64
  c.model.cond_blocks = 1
  c.model.decoder_context = "stack"    # stack | window | grayscale | full | none
  c.model.decoder_layers = 6
  c.model.decoder_kernel = 3
  c.model.decoder_window = (3, 2)      # (A, B) for window / grayscale
  c.model.decoder_filters = 64
  c.model.decoder_blocks = 2           # extra 1x1 gated blocks after the context layers
  c.model.prior = "af"                 # af | normal
  c.model.prior_steps = 2
  c.model.prior_hidden = (640, 640)
  c.model.posterior = "gaussian"       # gaussian | iaf
  c.model.posterior_steps = 2
  c.model.posterior_hidden = (640, 640)
  c.model.posterior_context = 64

  c.objective = ml_collections.ConfigDict()
  c.objective.beta = 1.0
  c.objective.free_bits = 0.03         # nats per group (openai/iaf kl_min)
  c.objective.free_bits_groups = 32    # one group per latent dimension
  c.objective.kl_warmup_steps = 0

  c.train = ml_collections.ConfigDict()
  c.train.steps = 200_000
  c.train.batch_size = 64              # global batch
  c.train.optimizer = "adamax"         # adamax | adam
  c.train.learning_rate = 2e-3
  c.train.warmup_steps = 1000
  c.train.decay = "cosine"             # cosine | exponential | constant
  c.train.min_learning_rate = 1e-5
  c.train.grad_clip_norm = 100.0
  c.train.ema_decay = 0.999
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  c.train.log_every = 100
  c.train.eval_every = 5000
  c.train.max_consecutive_skips = 20
  c.train.shuffle_buffer = 10_000

  c.eval = ml_collections.ConfigDict()
  c.eval.iwae_samples = 4096
  c.eval.batch_size = 100
  c.eval.num_examples = -1             # -1: the whole test split
  c.eval.iwae_examples = -1            # IWAE on an evenly spaced subset of this many (-1: all)
  c.eval.periodic_examples = 256       # held-out examples for the cheap in-training eval (EMA)
  c.eval.num_images = 8                # samples / reconstructions per TensorBoard image grid
  return c
