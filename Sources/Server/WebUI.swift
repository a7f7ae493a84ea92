// A one-page chat for the browser at GET /: it streams from /v1/chat/completions and keeps the
// conversation in the page (the server keeps the KV cache of its longest shared prefix).
enum WebUI {
    static let page = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SwiftKT</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;color:#222}
#log div{white-space:pre-wrap;margin:.5rem 0;padding:.5rem .75rem;border-radius:.5rem}
.user{background:#e8f0fe}.assistant{background:#f3f3f3}.error{background:#fde8e8}
form{display:flex;gap:.5rem}textarea{flex:1;font:inherit;padding:.5rem}button{font:inherit}
small{color:#666}
</style></head><body>
<h3>SwiftKT <small id="model"></small></h3>
<div id="log"></div>
<form id="f"><textarea id="q" rows="3" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
<div><button>Send</button><br><button type="button" id="clear">Clear</button></div></form>
<small>temperature <input id="t" type="number" value="0.7" min="0" max="2" step="0.1" style="width:4rem"></small>
<script>
const log=document.getElementById('log'),q=document.getElementById('q');let messages=[];
// A server started with --api-key: open the page as http://host:port/#key=KEY.
const key=(location.hash.match(/key=([^&]+)/)||[])[1],auth=key?{'Authorization':'Bearer '+decodeURIComponent(key)}:{};
fetch('/v1/models',{headers:auth}).then(r=>r.json()).then(j=>{document.getElementById('model').textContent=j.data?j.data[0].id:'(no key? open /#key=KEY)'});
function add(role,text){const d=document.createElement('div');d.className=role;d.textContent=text;log.appendChild(d);return d}
document.getElementById('clear').onclick=()=>{messages=[];log.innerHTML=''};
q.addEventListener('keydown',e=>{if(e.key==='Enter'&&!e.shiftKey){e.preventDefault();document.getElementById('f').requestSubmit()}});
document.getElementById('f').onsubmit=async e=>{
  e.preventDefault();const text=q.value.trim();if(!text)return;q.value='';
  messages.push({role:'user',content:text});add('user',text);const out=add('assistant','');let answer='';
  try{
    const r=await fetch('/v1/chat/completions',{method:'POST',headers:Object.assign({'Content-Type':'application/json'},auth),
      body:JSON.stringify({messages,stream:true,temperature:parseFloat(document.getElementById('t').value)})});
    if(!r.ok){throw new Error((await r.json()).error.message)}
    const reader=r.body.getReader(),dec=new TextDecoder();let buf='';
    for(;;){const {value,done}=await reader.read();if(done)break;buf+=dec.decode(value,{stream:true});
      let i;while((i=buf.indexOf('\n\n'))>=0){const ev=buf.slice(0,i);buf=buf.slice(i+2);
        if(!ev.startsWith('data: ')||ev==='data: [DONE]')continue;const j=JSON.parse(ev.slice(6));
        if(j.error)throw new Error(j.error.message);const c=j.choices[0]&&j.choices[0].delta.content;if(c){answer+=c;out.textContent=answer}}}
    messages.push({role:'assistant',content:answer});
  }catch(err){out.className='error';out.textContent=String(err.message||err);messages.pop()}
};
</script></body></html>
"""#
}
