/**
 * {@code slope train}: the command and what it prints ({@link io.slope.cli.train.TrainCommand}), and the supervision of
 * its processes: N ranks under one launcher (ADR 042) and the graceful stop on Ctrl-C or SIGTERM.
 */
package io.slope.cli.train;
