package demo

// StartAt is Start with a clock.
var StartAt = start
