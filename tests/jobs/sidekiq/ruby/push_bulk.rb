# Enqueue ARGV[0] HardWorker jobs on queue ARGV[1] with Sidekiq::Client.push_bulk; print the jids.
require "sidekiq"
require "json"

count = Integer(ARGV[0])
jids = Sidekiq::Client.push_bulk(
  "class" => "HardWorker",
  "queue" => ARGV[1] || "default",
  "args" => (0...count).map { |n| [n, "ruby"] }
)
puts JSON.generate(jids)
