# The Sidekiq side of `python -m bench jobs`: the workers (`sidekiq -r ./sidekiq_noop.rb`), and
#   ruby sidekiq_noop.rb N              enqueue N no-op jobs one call at a time (prints the
#                                       seconds it took)
#   ruby sidekiq_noop.rb latency N RATE enqueue N latency jobs at RATE a second; each carries
#                                       the time it was sent, and its run RPUSHes its start
#                                       delay in seconds onto bench:latency
require "sidekiq"

# redis-rb 4.8 warns on stderr at every SADD Sidekiq's push makes (its reply type changes in 5.0):
# a write per job that would be timed as part of Sidekiq's enqueue.
Redis.silence_deprecations = true

Sidekiq.configure_server do |config|
  config.logger.level = Logger::WARN # warnings only, as every worker in the benchmark runs
end

def now
  Process.clock_gettime(Process::CLOCK_REALTIME, :float_second)
end

class NoopWorker
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform
  end
end

class LatencyWorker
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform(sent)
    started = now
    Sidekiq.redis { |c| c.rpush("bench:latency", started - sent) }
  end
end

if $PROGRAM_NAME == __FILE__
  if ARGV[0] == "latency"
    count, rate = Integer(ARGV[1]), Float(ARGV[2])
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    count.times do |i|
      wait = start + i / rate - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      sleep(wait) if wait > 0
      LatencyWorker.perform_async(now)
    end
  else
    count = Integer(ARGV[0])
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    count.times { NoopWorker.perform_async }
    puts Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  end
end
