// Chooses what a <video> plays: hls_url where the browser plays HLS natively,
// else original_url (served with Range, so seeking works).
// hls.js seam (a later issue vendors /static/vendor/hls.js): when v.hls_url is
// set and native HLS is missing, `await import('./vendor/hls.js')` here, and if
// Hls.isSupported(): hls.loadSource(v.hls_url); hls.attachMedia(video); return
// { kind: 'hls.js', destroy: () => hls.destroy() }. Callers use only this.

export async function attachSource(video, v, { allowHls = true } = {}) {
  const url = allowHls && v.hls_url && video.canPlayType('application/vnd.apple.mpegurl') ? v.hls_url : v.original_url;
  if (!url) return null;
  video.src = url;
  return { kind: url === v.hls_url ? 'hls-native' : 'original', url, destroy: () => { video.removeAttribute('src'); video.load(); } };
}
