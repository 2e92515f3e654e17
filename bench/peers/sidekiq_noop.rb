# The Sidekiq side of `python -m bench jobs`: the no-op worker (`sidekiq -r ./sidekiq_noop.rb`),
# and, run as `ruby sidekiq_noop.rb N`, the enqueue of N jobs one call at a time (prints the
# seconds it took).
require "sidekiq"

Sidekiq.configure_server do |config|
  config.logger.level = Logger::WARN # warnings only, as every worker in the benchmark runs
end

class NoopWorker
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform
  end
end

if $PROGRAM_NAME == __FILE__
  count = Integer(ARGV[0])
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  count.times { NoopWorker.perform_async }
  puts Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
end
