"""Every concrete default in one place, each with the reason for its value.

Elsewhere, ``None`` means "the default" and is resolved against this module.
"""

from __future__ import annotations

# Seed for weight initialization and for generated validation inputs: any fixed value works,
# what matters is that it is explicit and recorded in every artifact.
DEFAULT_SEED = 0
MAX_SEED = 2**32 - 1  # numpy's legacy seeding's range, the narrowest of the generators used

# ONNX tensor names are a contract with every runtime and with Triton configs: never rely on
# whatever name the exporter happens to produce.
INPUT_NAME = "input"
# the input of a model with its preprocessing in the graph (export --preprocess): uint8 NHWC
PIXELS_INPUT_NAME = "pixels"
# export --preprocess checks its in-graph resize against Pillow's on the shipped photos as they
# are and at these sizes (reducing, enlarging); measured: within one level everywhere
PIXEL_GRAPH_CHECK_SIZES = ((640, 480), (333, 517), (150, 100))
PIXEL_GRAPH_MAX_LEVELS = 1.5
PIXEL_GRAPH_MIN_OPSET = 18  # Resize antialias and axes, CenterCropPad
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"
BATCH_AXIS_NAME = "batch"

# Opset 18 is what torch's ONNX exporter emits natively (lower values go through a version
# converter); ONNX Runtime and TensorRT 10/11 parse it. 13 is the floor because per-channel
# Q/DQ (INT8 artifacts) needs it; 21 is the highest opset every supported runtime parses.
DEFAULT_OPSET = 18
MIN_OPSET = 13
MAX_OPSET = 21

# Batch sizes used to validate an export against PyTorch: batch 1 and one larger batch, so a
# graph that silently baked in the export batch size fails.
VALIDATION_BATCH_SIZES = (1, 8)

# FP32 export tolerance against PyTorch: max |a - b| <= atol + rtol * max |b|. The scale is the
# largest reference logit, not each element: untrained logits are ~1e-2 and element-wise
# relative error near zero means nothing. Reordered float32 accumulation over a 9216-wide dot
# product gives ~1e-6 of the scale; 1e-4 leaves room and still catches a wrong op.
FP32_ATOL = 1e-6
FP32_RTOL = 1e-4

# Prefix of this tool's keys in an ONNX file's metadata_props (alexnet_deploy.variant, ...).
METADATA_PREFIX = "alexnet_deploy."

# Environment variable that makes the CLI show tracebacks for user errors (same as --debug).
DEBUG_ENV_VAR = "ALEXNET_DEPLOY_DEBUG"

# Where artifacts go when no output path is given. Build outputs: listed in .gitignore.
DEFAULT_WORK_DIR = "work"
# A run waits this long for another run that holds its work directory's lock (locking.py):
# long enough for a full AlexNet build and bench matrix, short enough that a hung run is named.
LOCK_WAIT_S = 1800.0

# How many mismatched checkpoint keys an error message names before it says "and N more".
MAX_MISMATCHES_SHOWN = 5

# Calibration. Entropy with ONNX Runtime's default 128 bins tends to pick the last bin, i.e. the
# min/max range: 2048 bins give the KL search room to clip outliers.
ENTROPY_NUM_BINS = 2048
PERCENTILE = 99.999
PERCENTILE_NUM_BINS = 2048

# Calibrate in batches (> 1): at batch 1 the fully connected layers look like matrix-vector
# products to some quantizers, and batching makes collection faster.
CALIBRATION_BATCH_SIZE = 8

# Without --calib-size, half of the available samples calibrate and the rest are held out for
# fidelity, each capped so a large folder does not make calibration slow.
MAX_DEFAULT_CALIB_SIZE = 256
MAX_EVAL_SIZE = 512

# Unreadable images are skipped with a warning while they are at most this fraction of the
# files; beyond it the folder is probably not what the user meant, and the run fails.
MAX_CORRUPT_FRACTION = 0.10

# Bounds on what one image may cost, checked from its header before any pixel is decoded: a
# 100-megapixel photo (the largest sensors in common use) decodes to 300 MB of RGB; and the
# short side's resize of a thin strip (1 x 4000 pixels: 256 x 1,024,000 after it, 2.9 GB at
# peak) is refused when its long side would pass 16,384 pixels (an aspect of 64:1 at 256).
MAX_IMAGE_PIXELS = 100_000_000
MAX_RESIZED_SIDE = 16_384

# Fidelity budget: an artifact fails when top-1 drops more than this many percentage points
# against FP32 (MLPerf's spirit: 99% of FP32 accuracy).
DEFAULT_MAX_TOP1_DROP = 1.0

# Ops that stay FP32 in the FP16 artifact: LRN squares and sums activations, which overflows
# FP16's 65504 maximum on real post-ReLU magnitudes.
FP16_KEEP_FP32_OPS = ("LRN",)

# Data source name for generated inputs: labelled synthetic in every report it touches.
SYNTHETIC = "synthetic"

# Engines are built for batch 1..DEFAULT_MAX_BATCH: covers the bench matrix (1..64) and the
# Triton preferred batch sizes.
DEFAULT_MAX_BATCH = 64

# Per-precision agreement with the FP32 reference that the engines' parity check demands:
# (max |diff| relative to max |FP32 logit|, minimum top-1 agreement, minimum centered cosine).
# INT8 has no fixed tolerance: its kernels differ between CPU classes, so an INT8 engine is held
# to its artifact's emulated figure less the calibration budget (tests/engines/test_parity.py).
PARITY_TOLERANCE = {
    "fp32": (1e-4, 1.0, 0.99999),
    "fp16": (2e-2, 0.99, 0.999),
}

# TensorRT builder workspace limit: AlexNet's largest tactic needs well under 1 GiB.
TRT_WORKSPACE_MB = 1024

# Benchmark defaults. Warm-up until both counts are met; then measure until at least
# BENCH_MIN_ITERATIONS and BENCH_MIN_SECONDS, and the median's 95% CI is within +-2%, or
# BENCH_MAX_SECONDS runs out (the row then says it stopped on the cap). Short enough that
# the whole CPU matrix runs in minutes on 2 cores.
BENCH_WARMUP_ITERATIONS = 5
BENCH_WARMUP_SECONDS = 0.5
BENCH_MIN_ITERATIONS = 20
BENCH_MIN_SECONDS = 1.0
BENCH_MAX_SECONDS = 6.0
BENCH_STABILITY = 0.02
BENCH_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
BENCH_BATCHES = (1, 32)
# MLPerf-style server mode: highest Poisson arrival rate whose p99 stays under this bound.
BENCH_SERVER_BOUND_MS = 100.0
# Fidelity inputs for every bench row: the shipped photos (real images), at most this many.
BENCH_FIDELITY_SAMPLES = 16
# Stability verdict (bench/stats.py `stability`): a row is flagged unstable when its own
# measurements disagree. 10% is pyperf's rule (it warns when the std dev exceeds 10% of the mean);
# on this project's recorded main jobs (docs/benchmarks/) the quieter AMD Zen 4 run flagged none
# of its 26 rows (nor the tuned run's 12), the noisy Ice Lake one (p50s moving 1-43% between
# rounds) 17 of 26.
# Rounds (--repeat): std dev of the per-round images/s over their mean (Zen 4: at most 7%).
BENCH_UNSTABLE_ROUNDS_CV = 0.10
# One round, cut in time order into halves: their p50s differ by more than this AND neither
# lies in the other's 95% interval (load that came or went, a clock change). Zen 4: at most 5%.
BENCH_UNSTABLE_DRIFT = 0.10
# ... judged only from this many samples a round (5 a half: below it each half's interval spans
# nearly all its samples).
BENCH_STABILITY_MIN_SAMPLES = 10
# Latency mode only (one request in flight: a quiet machine's latencies cluster; in throughput
# and server modes requests contend with each other by design, and the per-request spread of a
# stable row reached +-30% on the recorded tuned run): the p50's 95% interval is wider than
# +-this (the stopping rule aims at +-2%; Zen 4: at most +-2.5%) ...
BENCH_UNSTABLE_CI = 0.10
# ... or more than this share of the calls took over FACTOR times, or under 1/FACTOR of, the
# median: a second speed (the 97 ms / 241 ms halves of issue #24). A share, not pyperf's single
# min/max, so that one stall in hundreds of calls (5.7x the mean on Zen 4) flags nothing.
# Zen 4: at most 4% of the calls.
BENCH_UNSTABLE_MODE_FACTOR = 1.5
BENCH_UNSTABLE_MODE_SHARE = 0.10

# Gate. A change is a regression when it exceeds the threshold AND the bootstrap interval of
# the ratio excludes "no change". 10% is the default: several times this machine's
# measured A/A noise (docs/gate-evaluation.md), small enough to catch a real slowdown.
GATE_THRESHOLD = 0.10
# p99 is a tail statistic: one stall in a short run moves it far more than the median, and a
# bootstrap within one run cannot see run-to-run stalls. Its default threshold is wider.
GATE_THRESHOLDS = {"p50": GATE_THRESHOLD, "throughput": GATE_THRESHOLD, "p99": 0.25}
# A history of one past run with no measured noise (gate BASE CUR): separate runs of one engine
# moved p50 by up to 16-20% on this project's machines (scripts/gate-evaluation-unpaired: largest A/A
# changes 16.4%, 19.4%, 20.1% in three evaluations of 20), so the 10% of the paired setting would
# raise false alarms (2-3 in 20 measured). 25% keeps a margin over the largest seen.
GATE_UNPAIRED_THRESHOLDS = {"p50": 0.25, "throughput": 0.25, "p99": 0.5}
GATE_BOOTSTRAP_RESAMPLES = 2000
GATE_MIN_SAMPLES = 10
# A p99 rests on the samples beyond it: 1% of the run. Below 10 such samples per side (1000
# samples) one stall decides it and the bootstrap's interval is too narrow to know (seen in CI:
# 0.70 -> 4.78 ms between two runs of the same engine, 700 samples each). Such a p99 is
# reported, not judged.
GATE_P99_MIN_SAMPLES = 1000
# Fidelity budget: top-1 agreement may fall this many points before the gate fails.
GATE_TOP1_BUDGET_POINTS = 1.0
# history gates: threshold = this x the largest change between two separate runs of
# the configuration (gate --measure-noise, or the history's runs); gate/spread.py
NOISE_SAFETY_FACTOR = 2.0
NOISE_RUNS = 3
# gate --history STORE: the last runs of each configuration (on this CPU class and model) the
# current run is judged with; the change points are looked for over them and the current run.
GATE_HISTORY_RUNS = 10
# Change points (gate/changepoint.py). A step needs 2 runs on each side (one run is a stall as
# often as a step), a permutation p-value at most 0.05 (999 seeded shuffles for a 20-run window,
# more for a shorter series: the same work; p resolves to 0.001 or finer;
# at 0.01 a step is named only once 4-5 runs follow it: 11 runs hold too few orderings) and a 7%
# step between the medians either side: at 5%, a stretch of faster runs of this shared machine,
# no code changed, showed a step in 15% of 11-run histories drawn in the machine's real order; at
# 7%, in 5%, with nearly the same detections of a 10% step. All the figures:
# docs/gate-evaluation-changepoint.md.
CHANGEPOINT_MIN_SEGMENT = 2
CHANGEPOINT_ALPHA = 0.05
CHANGEPOINT_PERMUTATIONS = 999
CHANGEPOINT_MIN_STEP = 0.07
# A short series cannot reach 0.05 however clear its step (the permutation test's floor: 9 runs
# with 3 after a step, p >= 0.066 exactly; docs/dashboard.md), so a best split up to this p
# with a large enough step is shown as a "candidate step", faintly: named once more runs come.
CHANGEPOINT_CANDIDATE_ALPHA = 0.10
# Change points are looked for in windows of at most this many runs, each half overlapping the
# next: the test's n x n distances for 999 shuffles cost memory as n squared (636 MB at 150
# runs), and the false-alarm rate measured on 11-run histories holds per window.
CHANGEPOINT_WINDOW = 2 * GATE_HISTORY_RUNS
# gate --history STORE --last: at most this many stored runs per configuration (a longer
# history is the dashboard's, in windows)
GATE_HISTORY_MAX_RUNS = 50
# A/A and evaluation trials: pairs of interleaved blocks (A then B, B then A, ...), each block
# this many calls (~0.1 s for AlexNet INT8 at batch 1 here).
AA_PAIRS = 20
AA_BLOCK_CALLS = 30

# Triton: dynamic batching prefers these batch sizes and waits at most this long to form one.
TRITON_PREFERRED_BATCHES = (8, 32)
TRITON_QUEUE_DELAY_US = 500
# Client timeouts: an unreachable server fails within this many seconds.
TRITON_TIMEOUT_S = 5.0

# tune: the tuned engine's throughput over the best peer row of the same run (issue target)
TUNED_OVER_PEER_TARGET = 1.2
# tune against each runtime used directly with its documented throughput settings, same run
# (issue #28): at least as fast (1.0x), and at least this % of the INT8 compute peak where any
# of those rows reaches it
TUNE_OVER_DIRECT_TARGET = 1.0
TUNE_PEAK_TARGET_PCT = 90.0
# tune's stage 1 (docs/benchmarks.md, "How tune searches"): batch 1 (latency) up to 128 (static
# OpenVINO engines level off from 32 to 128 on the 2-core AMD Zen 4: where a larger machine's
# still climbs, it is searched), each engine compiled for its own batch, at the runtime's optimal
# number of requests: OpenVINO's throughput hint says (2 on 2 cores); elsewhere
# TUNE_DEFAULT_REQUESTS, one request per core there
TUNE_BATCHES = (1, 8, 32, 64, 128)
TUNE_DEFAULT_REQUESTS = 2
# stage 2 refines the TUNE_REFINE fastest configurations of stage 1 that meet the constraint,
# one setting at a time: the dynamic range against the static batch, these request counts,
# an INT8 engine's float parts in bf16 (native-BF16 CPUs)
TUNE_REFINE = 3
TUNE_REQUESTS = (1, 2, 4)
# the search's time budget (0: none). Each stage may use the budget up to its share (from the
# search's start), so that the later ones have time left: AlexNet's default space here is about
# 43 candidate-rounds in stage 1 (engines and the runtimes used directly), 12 in stage 2 and 15
# in the confirm stage (5 finalists x 3 rounds), at a few seconds each on 2 cores: ~4 minutes
TUNE_TIME_BUDGET_S = 600.0
TUNE_STAGE1_SHARE = 0.6
TUNE_STAGE2_SHARE = 0.8
# the confirm stage: the TUNE_CONFIRM_TOP fastest candidates of stages 1-2 that meet the
# constraint and the best row of each runtime used directly, measured again interleaved (round
# robin) over TUNE_CONFIRM_ROUNDS rounds (at least --repeat): the choice is the best median, and
# the ratio to each runtime the median of the per-round ratios. Two medians closer than
# TUNE_NOISE_FLOOR, or than the spread of either one's rounds, are within noise of each other
# (2%: the run-to-run spread of one configuration on the 2-core machines, issue #28's figures)
TUNE_CONFIRM_TOP = 3
TUNE_CONFIRM_ROUNDS = 3
TUNE_NOISE_FLOOR = 0.02
# the runtimes used directly, at their documented throughput settings: OpenVINO's asynchronous
# queue of its optimal number of requests on a static batch, ONNX Runtime's default session
# called from one thread and from two at once (a session is documented as safe for concurrent
# Run calls), each at these batches
TUNE_DIRECT_BATCHES = (1, 32, 64)
TUNE_DIRECT_ORT_CALLERS = (1, 2)

# plan: precision plans over the weight layers (alexnet_deploy/precision/). --exhaustive tries
# all 2^n plans up to this many free layers (AlexNet: 8 -> 256 plans, seconds each on the test
# network); the greedy search tries n + 1. At most PLAN_MAX_MEASURED plans within the budget are
# benched (the front's cheapest), each round interleaved with the others.
PLAN_EXHAUSTIVE_MAX_LAYERS = 10
# Past PLAN_PER_LAYER_MAX weight layers (ResNet-50: 54), one pass per layer would take too
# long (each pass writes a plan file and evaluates every held-out image: about 10 s for
# ResNet-50 on 2 cores), so the sensitivity is one-shot (each layer's noise from one all-INT8
# pass, the way compare measures it) and the greedy steps keep whole blocks float. The greedy
# search stops at PLAN_MAX_CANDIDATES plans or PLAN_TIME_BUDGET_S seconds (sensitivity
# included), whichever comes first: ResNet-50's 18 blocks fit both, in a few minutes.
PLAN_PER_LAYER_MAX = 16
PLAN_MAX_CANDIDATES = 32
PLAN_TIME_BUDGET_S = 300.0
# the one-shot sensitivity reads this many held-out images (one batch's tensors at a time)
PLAN_ONE_SHOT_IMAGES = 64
# a plan's label lists at most this many layers (then their count and a digest of the set)
PLAN_LABEL_NAMES = 4
# per-layer tables on a terminal (compare, plan's sensitivity): past this many layers, the
# most sensitive ones with a note; the files hold every layer
TABLE_TOP_LAYERS = 20
PLAN_MAX_MEASURED = 4
PLAN_BATCHES = (1, 32)
PLAN_ROUNDS = 3
# plan --sufficiency: calibration subsets of these sizes (and the whole set), each drawn this
# many times with replacement; intervals are the central SUFFICIENCY_INTERVAL of the draws.
# Calibration and held-out images disagree when a channel's means differ by more than
# SHIFT_MAX_MEAN_DIFFERENCE pooled standard deviations (a "medium" effect size) or their
# standard deviations by more than a factor SHIFT_MAX_STD_RATIO.
SUFFICIENCY_SIZES = (8, 16, 32, 64, 128)
SUFFICIENCY_RESAMPLES = 8
SUFFICIENCY_INTERVAL = 0.9
SHIFT_MAX_MEAN_DIFFERENCE = 0.5
SHIFT_MAX_STD_RATIO = 1.5
# compare --profile: timed runs of one batch (after one warm-up run)
PROFILE_RUNS = 20

# The results store (store/db.py). A second writer to the SQLite file waits this long for the
# first's transaction (a run's rows: milliseconds; a busy CI machine: seconds) before its run
# fails with "busy"; a PostgreSQL server that has not answered within the connect timeout is
# reported unreachable rather than left to libpq's default of waiting forever.
STORE_BUSY_TIMEOUT_S = 30.0
STORE_CONNECT_TIMEOUT_S = 10
