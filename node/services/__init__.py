"""Domain rules and transactions; handlers call these, these call stores."""
