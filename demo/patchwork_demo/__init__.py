"""Patchwork's demo: synthetic councils, families and logins (Faker, en_GB), and two
deployments talking over HTTP. A tool for trying Patchwork and for its tests and
benchmarks; never part of the product the production wheel installs."""
