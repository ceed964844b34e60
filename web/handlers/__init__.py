"""Request handlers of the web site: parse, call one page or service function, render."""
