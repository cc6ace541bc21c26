package config

var Parse = parse
