/*
 * serial.h - polled driver for the 16550A-compatible UART at 0x3f8.
 *
 * Output never uses interrupts: the kernel waits for THRE (transmit
 * holding register empty) and then writes a burst of up to 16 bytes,
 * the depth of a 16550A FIFO. Lines end in a bare '\n'.
 */
#ifndef SERIAL_H
#define SERIAL_H

#include "lib.h"

#define SERIAL_FIFO_DEPTH 16

/* How a burst is written to the THR; see serial_burst(). */
enum serial_tx_mode {
	SERIAL_TX_OUTB,		/* one outb per byte */
	SERIAL_TX_OUTSB,	/* one rep outsb per burst */
};

void serial_init(void);
void serial_set_tx_mode(enum serial_tx_mode mode);
enum serial_tx_mode serial_get_tx_mode(void);

/* Whole message under the console lock (safe with two CPUs). */
void serial_write(const char *buf, size_t len);
/* Same without the lock, for the exception path only. */
void serial_write_unlocked(const char *buf, size_t len);
/* Wait for THRE, then send n <= SERIAL_FIFO_DEPTH bytes; no lock. */
void serial_burst(const u8 *buf, size_t n);
/* Wait until the transmitter is completely idle (before a reset). */
void serial_flush(void);

/* Input: returns a byte, or -1 if none is waiting. */
int serial_try_getc(void);
/* Input: polls until a byte arrives. */
int serial_getc(void);

#endif
