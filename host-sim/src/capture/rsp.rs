//! A GDB remote serial protocol client: just what sampling a stub needs (qemu's gdbstub, user or
//! system mode). Packets are `$data#checksum`; after `QStartNoAckMode` nothing is acknowledged.
//! Reply bodies may be run-length encoded (`c*N`); binary escapes (`}`) are undone.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why the stub stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Stopped with this signal (5 = SIGTRAP after a step or breakpoint).
    Signal(u8),
    /// The process exited with this status.
    Exited(u8),
    /// The process was killed by this signal.
    Killed(u8),
}

#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    ack: bool,
    /// Print every exchange on stderr (environment variable `ORCWALK_RSP_TRACE`).
    trace: bool,
}

fn proto(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex text into bytes.
pub fn from_hex(s: &[u8]) -> io::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(proto("odd-length hex"));
    }
    s.chunks(2)
        .map(|p| match (hex_nibble(p[0]), hex_nibble(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(proto(format!("bad hex {:?}", String::from_utf8_lossy(p)))),
        })
        .collect()
}

impl Client {
    /// Connects and turns acknowledgements off.
    pub fn connect(stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        let trace = std::env::var_os("ORCWALK_RSP_TRACE").is_some();
        let mut c = Client { reader: BufReader::new(stream), writer, ack: true, trace };
        if c.request(b"QStartNoAckMode")? == b"OK" {
            c.ack = false;
        }
        Ok(c)
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let sum = data.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let mut p = Vec::with_capacity(data.len() + 4);
        p.push(b'$');
        p.extend_from_slice(data);
        p.extend_from_slice(format!("#{sum:02x}").as_bytes());
        self.writer.write_all(&p)
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8];
        self.reader.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// Reads one packet body (skipping acks and stray bytes before `$`).
    fn receive(&mut self) -> io::Result<Vec<u8>> {
        while self.byte()? != b'$' {}
        let mut raw = Vec::new();
        loop {
            match self.byte()? {
                b'#' => break,
                b => raw.push(b),
            }
        }
        let cs = [self.byte()?, self.byte()?];
        let sum = raw.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let want = from_hex(&cs)?;
        if want.first() != Some(&sum) {
            return Err(proto("checksum mismatch"));
        }
        if self.ack {
            self.writer.write_all(b"+")?;
        }
        // Undo escapes and run-length encoding.
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'}' if i + 1 < raw.len() => {
                    out.push(raw[i + 1] ^ 0x20);
                    i += 2;
                }
                b'*' if i + 1 < raw.len() && !out.is_empty() => {
                    let n = usize::from(raw[i + 1]).saturating_sub(29);
                    let last = out[out.len() - 1];
                    out.extend(std::iter::repeat_n(last, n));
                    i += 2;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Sends a packet and returns the reply.
    pub fn request(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.send(data)?;
        let r = self.receive()?;
        if self.trace {
            let shown = &r[..r.len().min(64)];
            eprintln!("rsp: {} -> {}", String::from_utf8_lossy(data), String::from_utf8_lossy(shown));
        }
        Ok(r)
    }

    fn stop(reply: &[u8]) -> io::Result<Stop> {
        let code = |r: &[u8]| -> io::Result<u8> {
            from_hex(r.get(1..3).unwrap_or_default())?
                .first()
                .copied()
                .ok_or_else(|| proto("stop reply without a code"))
        };
        match reply.first() {
            Some(b'T' | b'S') => Ok(Stop::Signal(code(reply)?)),
            Some(b'W') => Ok(Stop::Exited(code(reply)?)),
            Some(b'X') => Ok(Stop::Killed(code(reply)?)),
            _ => Err(proto(format!("unexpected stop reply {:?}", String::from_utf8_lossy(reply)))),
        }
    }

    /// Why the target is stopped now.
    pub fn status(&mut self) -> io::Result<Stop> {
        let r = self.request(b"?")?;
        Self::stop(&r)
    }

    /// Executes one instruction, delivering `signal` first when not 0.
    pub fn step(&mut self, signal: u8) -> io::Result<Stop> {
        let r =
            if signal == 0 { self.request(b"s")? } else { self.request(format!("vCont;S{signal:02x}").as_bytes())? };
        Self::stop(&r)
    }

    /// Runs until a breakpoint, signal or exit, delivering `signal` first when not 0.
    pub fn cont(&mut self, signal: u8) -> io::Result<Stop> {
        let r = if signal == 0 { self.request(b"c")? } else { self.request(format!("C{signal:02x}").as_bytes())? };
        Self::stop(&r)
    }

    /// Resumes without waiting for the stop (see `interrupt` and `wait`).
    pub fn resume(&mut self, signal: u8) -> io::Result<()> {
        if signal == 0 { self.send(b"c") } else { self.send(format!("C{signal:02x}").as_bytes()) }
    }

    /// Asks a running target to stop (byte 0x03, outside any packet).
    pub fn interrupt(&mut self) -> io::Result<()> {
        self.writer.write_all(&[3])
    }

    /// Waits for the stop reply of a `resume`.
    pub fn wait(&mut self) -> io::Result<Stop> {
        let r = self.receive()?;
        Self::stop(&r)
    }

    /// Sets (`true`) or clears a software breakpoint.
    pub fn breakpoint(&mut self, addr: u64, set: bool) -> io::Result<()> {
        let r = self.request(format!("{}0,{addr:x},4", if set { 'Z' } else { 'z' }).as_bytes())?;
        if r == b"OK" {
            Ok(())
        } else {
            Err(proto(format!("breakpoint at {addr:#x}: {}", String::from_utf8_lossy(&r))))
        }
    }

    /// x0..x30, sp, pc, pstate (the `user_pt_regs` order).
    pub fn registers(&mut self) -> io::Result<[u64; 34]> {
        let r = self.request(b"g")?;
        let b = from_hex(&r)?;
        if b.len() < 33 * 8 + 4 {
            return Err(proto(format!("register reply of {} bytes", b.len())));
        }
        let mut regs = [0u64; 34];
        for (i, reg) in regs.iter_mut().enumerate().take(33) {
            *reg = u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().map_err(|_| proto("registers"))?);
        }
        regs[33] = u64::from(u32::from_le_bytes(b[264..268].try_into().map_err(|_| proto("cpsr"))?));
        Ok(regs)
    }

    /// Reads `len` bytes at `addr`; `None` when the stub says the memory is not readable.
    pub fn memory(&mut self, addr: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        const CHUNK: usize = 0x7f0;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = CHUNK.min(len - out.len());
            let at = addr + out.len() as u64;
            let r = self.request(format!("m{at:x},{n:x}").as_bytes())?;
            if r.first() == Some(&b'E') || r.is_empty() {
                return Ok(None);
            }
            let b = from_hex(&r)?;
            if b.len() != n {
                return Err(proto(format!("asked {n} bytes at {at:#x}, got {}", b.len())));
            }
            out.extend_from_slice(&b);
        }
        Ok(Some(out))
    }

    /// Kills the target (qemu-user exits).
    pub fn kill(&mut self) {
        let _ = self.send(b"k");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        assert_eq!(from_hex(b"00ff7A").unwrap(), vec![0, 0xff, 0x7a]);
        assert!(from_hex(b"0").is_err());
        assert!(from_hex(b"zz").is_err());
    }

    #[test]
    fn stop_replies() {
        assert_eq!(Client::stop(b"T05thread:01;").unwrap(), Stop::Signal(5));
        assert_eq!(Client::stop(b"S0e").unwrap(), Stop::Signal(14));
        assert_eq!(Client::stop(b"W00").unwrap(), Stop::Exited(0));
        assert_eq!(Client::stop(b"X09").unwrap(), Stop::Killed(9));
        assert!(Client::stop(b"OK").is_err());
        assert!(Client::stop(b"T").is_err());
    }
}
