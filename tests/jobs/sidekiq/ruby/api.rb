# What Sidekiq's own API sees, as JSON; "add-retries-to-queue" first moves every job of the
# retry set to its queue (the Web UI's "Add to queue"), "quiet IDENTITY" presses Quiet.
require "sidekiq/api"
require "json"

case ARGV[0]
when "add-retries-to-queue" then Sidekiq::RetrySet.new.each(&:add_to_queue)
when "quiet" then Sidekiq::ProcessSet.new.each { |p| p.quiet! if p.identity == ARGV[1] }
when "stop" then Sidekiq::ProcessSet.new.each { |p| p.stop! if p.identity == ARGV[1] }
end

stats = Sidekiq::Stats.new
puts JSON.generate(
  "processed" => stats.processed,
  "failed" => stats.failed,
  "enqueued" => stats.enqueued,
  "retries" => Sidekiq::RetrySet.new.map(&:item),
  "dead" => Sidekiq::DeadSet.new.map(&:item),
  "scheduled" => Sidekiq::ScheduledSet.new.map(&:item),
  "processes" => Sidekiq::ProcessSet.new.map { |p|
    {"identity" => p.identity, "pid" => p["pid"], "busy" => p["busy"], "queues" => p["queues"],
     "concurrency" => p["concurrency"], "labels" => p["labels"], "quiet" => p.stopping?}
  },
  "workers" => Sidekiq::Workers.new.map { |process, _thread, work| work.merge("process" => process) }
)
