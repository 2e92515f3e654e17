"""Server-side Lua: the script registry (`scripts`), Redis Functions built from it
(`functions`), and the scripts themselves, one ``lua/<name>.lua`` per atomic operation."""
