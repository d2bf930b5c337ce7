# Client benchmarks against the emulator (figures in bench/RESULTS.md):
#   make bench-call-latency   bench/call --latency 20: client:call and the plain libcurl loop
#                             when every answer takes 20 ms, as over a real network
#   make bench-batch          bench/batch/run: client:batch beside a plain libcurl multi loop
#   make bench-batch-latency  bench/batch/run --latency 20: the same when every answer takes 20 ms
bench-call-latency: core
	bench/call --latency 20

bench-batch: core
	bench/batch/run

bench-batch-latency: core
	bench/batch/run --latency 20

.PHONY: bench-call-latency bench-batch bench-batch-latency
