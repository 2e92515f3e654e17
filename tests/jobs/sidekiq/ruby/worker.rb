# The Ruby side of the interop tests: `sidekiq -r ./worker.rb`. Each job records its run.
require "sidekiq"

Sidekiq.configure_server do |config|
  config.options[:poll_interval_average] = 0.5 # the scheduled-job poller, every ~0.5 s
end

class HardWorker
  include Sidekiq::Worker

  def perform(n, label = "")
    Sidekiq.redis do |conn|
      conn.incr("t:runs")
      conn.incr("t:ruby-runs")
      conn.sadd("t:done", n)
    end
  end
end
