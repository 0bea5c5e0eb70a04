"""Everything that writes to the data folder goes through the store packages."""
